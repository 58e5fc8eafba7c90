"""Design studies: DFB band edges and inverse design (Bragg), lasing duration vs pump and
substrate, the CW feasibility map, resolved vs homogenised gratings, and the mesh survey."""
