"""int8 quantization: the integer semantics, the QuantGraph, the quantizer and the numpy integer reference."""
