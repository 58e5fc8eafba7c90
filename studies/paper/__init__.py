"""The paper's figures and numbers, regenerated: Fig. 1c, the heat-fraction calibration, Fig. 4b-d,
the sensitivities, the film's diffusion time, and the validation report that sets them beside the
paper's values."""
