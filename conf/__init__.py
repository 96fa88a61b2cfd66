# Lets the configs ship with the package (hydra's pkg://conf search path).
