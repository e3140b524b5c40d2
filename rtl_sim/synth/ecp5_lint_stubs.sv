// For Verilator's lint of the board top only: the ports and parameters of the ECP5 primitives it instantiates, with
// no behaviour (yosys's synth_ecp5 brings the real cell). Never part of a simulation or a synthesis.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNDRIVEN */
module EHXPLLL #(
  parameter int CLKI_DIV     = 1,
  parameter int CLKFB_DIV    = 1,
  parameter int CLKOP_DIV    = 8,
  parameter int CLKOP_CPHASE = 0,
  parameter int CLKOP_FPHASE = 0,
  parameter     CLKOP_ENABLE = "ENABLED",
  parameter     FEEDBK_PATH  = "CLKOP"
) (
  input  logic CLKI, CLKFB, PHASESEL1, PHASESEL0, PHASEDIR, PHASESTEP, PHASELOADREG, STDBY, PLLWAKESYNC, RST,
  input  logic ENCLKOP, ENCLKOS, ENCLKOS2, ENCLKOS3,
  output logic CLKOP, CLKOS, CLKOS2, CLKOS3, LOCK, INTLOCK, REFCLK, CLKINTFB
);
endmodule
/* verilator lint_on UNDRIVEN */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on DECLFILENAME */
