"""Static cost of a candidate on a chip: cycles, latency, energy, peak SRAM (arena plan) and flash."""
