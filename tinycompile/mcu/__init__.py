"""MCU back end: QuantGraph -> TVM (Relax, TIR) -> C library + static AOT runner -> firmware -> QEMU."""
