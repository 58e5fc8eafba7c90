# cqdlaser on the official DOLFINx image (same minor version as the PyPI wheel: 0.11).
# DOLFINx, PETSc, SLEPc and MPI come with the image: the package is installed without
# its `dolfinx` extra so that no second DOLFINx is pulled in.
FROM ghcr.io/fenics/dolfinx/dolfinx:v0.11.0

# The gmsh wheel links against a few X/GL libraries that the base image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglu1-mesa libxcursor1 libxft2 libxinerama1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/cqdlaser
COPY pyproject.toml README.md ./
COPY geometry ./geometry
COPY physics ./physics
COPY studies ./studies
RUN python3 -m pip install --no-cache-dir . \
    && python3 -c "import gmsh, dolfinx, slepc4py; print('cqdlaser image ok')"

WORKDIR /out
ENTRYPOINT ["cqdlaser"]
CMD ["--help"]
