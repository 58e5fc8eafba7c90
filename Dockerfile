# cqdlaser on the official DOLFINx image (same minor version as the PyPI wheel: 0.11).
# DOLFINx, PETSc, SLEPc and MPI come with the image: the package is installed without
# its `dolfinx` extra so that no second DOLFINx is pulled in.
FROM ghcr.io/fenics/dolfinx/dolfinx:v0.11.0

# The gmsh wheel links against a few X/GL libraries that the base image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglu1-mesa libxcursor1 libxft2 libxinerama1 \
    && rm -rf /var/lib/apt/lists/*

# The repository's folders install as one package: src/cqdlaser/ is `cqdlaser`, geometry/ is
# `cqdlaser.geometry`, physics/ `cqdlaser.physics`, studies/ `cqdlaser.studies` (pyproject.toml).
WORKDIR /opt/cqdlaser
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY geometry ./geometry
COPY physics ./physics
COPY studies ./studies
# The smoke test runs outside the source folder: it checks the installed package (with its data).
RUN python3 -m pip install --no-cache-dir . \
    && cd /tmp \
    && python3 -c "import cqdlaser, cqdlaser.studies.cli, dolfinx, gmsh, slepc4py; \
from cqdlaser.physics.materials import known_materials; \
print('cqdlaser', cqdlaser.__version__, 'image ok,', len(known_materials()), 'materials')" \
    && cqdlaser --help > /dev/null

WORKDIR /out
ENTRYPOINT ["cqdlaser"]
CMD ["--help"]
