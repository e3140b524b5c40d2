// The SoC on a ULX3S board (Lattice LFE5U-85F-6BG381C): tc_soc with the accelerator, its memories sized for the
// ECP5's block RAM, the firmware image in the bitstream (InitFile), text output on the FTDI serial line and status
// on the LEDs. Pins: rtl_sim/synth/ulx3s.lpf.
//
// Clock: the board's 25 MHz oscillator through an EHXPLLL (UsePll = 1; CLKOP = 25 MHz * ClkfbDiv / ClkiDiv, its
// VCO at CLKOP * ClkopDiv; rtl_sim/synth/soc.py picks the dividers for the post-route Fmax) or the oscillator
// itself (UsePll = 0). ClockHz is the resulting core clock, for the serial line's baud divider.
// Reset: held for 2^16 cycles after configuration, while the PLL is unlocked and while the PWR button (active low)
// is pressed; the SoC's reset is synchronous, so it is released on this clock.
// LEDs: 0 the firmware exited, 1 with a non-zero code, 2 an access to an unmapped address, 3 the PLL locked,
// 4 text waiting for the serial line, 7 a heartbeat (bit 24 of the cycle counter: 1.2 Hz at 40 MHz).
module tc_soc_ulx3s #(
  parameter int unsigned MemWords      = 32768,  // 128 KiB of code and data (the simulation's 512 KiB do not fit)
  parameter int unsigned AccelN        = 8,
  parameter int unsigned AccelMemWords = 8192,   // the accelerator's memory in AccelN-byte words (64 KiB at N = 8)
  parameter int unsigned InpDepth      = 512,
  parameter int unsigned WgtTiles      = 32,
  parameter int unsigned AccDepth      = 128,
  parameter int unsigned OutDepth      = 128,
  parameter int unsigned ParamSets     = 8,
  parameter int unsigned InpPorts      = 2,
  parameter int unsigned QueueDepth    = 4,
  parameter              InitFile      = "",
  parameter int unsigned UsePll        = 1,
  parameter int unsigned ClkiDiv       = 5,      // 25 MHz / 5 * 8 = 40 MHz, VCO 600 MHz
  parameter int unsigned ClkfbDiv      = 8,
  parameter int unsigned ClkopDiv      = 15,
  parameter int unsigned ClockHz       = 40_000_000,
  parameter int unsigned Baud          = 115_200
) (
  input  logic       clk_25mhz,
  input  logic       btn_pwr_n,  // the PWR button, low while pressed
  output logic       ftdi_rxd,   // the FTDI chip's receive line: the SoC's serial output
  output logic [7:0] led
);
  logic clk, locked;

  if (UsePll != 0) begin : g_pll
    logic [5:0] unused_out;  // the PLL outputs this design has no use for
    // The coarse phase of CLKOP is half its divider, about 180 degrees of the VCO's output period: with CLKOP as
    // its own feedback the phase to the oscillator does not matter to the design.
    (* ICP_CURRENT = "12", LPF_RESISTOR = "8", MFG_ENABLE_FILTEROPAMP = "1", MFG_GMCREF_SEL = "2" *)
    EHXPLLL #(
      .CLKI_DIV(ClkiDiv),
      .CLKFB_DIV(ClkfbDiv),
      .CLKOP_DIV(ClkopDiv),
      .CLKOP_CPHASE((ClkopDiv - 1) / 2),
      .CLKOP_FPHASE(0),
      .CLKOP_ENABLE("ENABLED"),
      .FEEDBK_PATH("CLKOP")
    ) u_pll (
      .CLKI        (clk_25mhz),
      .CLKFB       (clk),
      .PHASESEL1   (1'b0),
      .PHASESEL0   (1'b0),
      .PHASEDIR    (1'b0),
      .PHASESTEP   (1'b0),
      .PHASELOADREG(1'b0),
      .STDBY       (1'b0),
      .PLLWAKESYNC (1'b0),
      .RST         (1'b0),
      .ENCLKOP     (1'b0),
      .ENCLKOS     (1'b0),
      .ENCLKOS2    (1'b0),
      .ENCLKOS3    (1'b0),
      .CLKOP       (clk),
      .CLKOS       (unused_out[0]),
      .CLKOS2      (unused_out[1]),
      .CLKOS3      (unused_out[2]),
      .LOCK        (locked),
      .INTLOCK     (unused_out[3]),
      .REFCLK      (unused_out[4]),
      .CLKINTFB    (unused_out[5])
    );
    logic unused_pll;
    assign unused_pll = ^unused_out;
  end else begin : g_osc
    logic unused_div;
    assign clk    = clk_25mhz;
    assign locked = 1'b1;
    assign unused_div = ^{ClkiDiv, ClkfbDiv, ClkopDiv};
  end

  // Reset: the button and the lock synchronised to clk, then a counter that must run out after both are quiet.
  logic [1:0]  sync_q;
  logic [15:0] por_q;
  logic        rst_nq;
  always_ff @(posedge clk) begin
    sync_q <= {sync_q[0], btn_pwr_n && locked};
    if (!sync_q[1]) begin
      por_q  <= '0;
      rst_nq <= 1'b0;
    end else if (por_q != '1) begin
      por_q  <= por_q + 16'd1;
      rst_nq <= 1'b0;
    end else begin
      rst_nq <= 1'b1;
    end
  end

  logic        tx_valid, tx_ready, exit, fault, uart_busy;
  logic [7:0]  tx_data;
  logic [31:0] exit_code, fault_addr;
  logic [63:0] cycles;

  tc_soc #(
    .MemWords(MemWords), .AccelN(AccelN), .AccelMemWords(AccelMemWords), .InpDepth(InpDepth),
    .WgtTiles(WgtTiles), .AccDepth(AccDepth), .OutDepth(OutDepth), .ParamSets(ParamSets),
    .InpPorts(InpPorts), .QueueDepth(QueueDepth), .InitFile(InitFile)
  ) u_soc (
    .clk_i        (clk),
    .rst_ni       (rst_nq),
    .tx_valid_o   (tx_valid),
    .tx_data_o    (tx_data),
    .tx_ready_i   (tx_ready),
    .exit_o       (exit),
    .exit_code_o  (exit_code),
    .fault_o      (fault),
    .fault_addr_o (fault_addr),
    .cycles_o     (cycles)
  );

  tc_soc_uart_tx #(
    .ClksPerBit((ClockHz + Baud / 2) / Baud)
  ) u_uart (
    .clk_i   (clk),
    .rst_ni  (rst_nq),
    .valid_i (tx_valid),
    .data_i  (tx_data),
    .ready_o (tx_ready),
    .tx_o    (ftdi_rxd),
    .busy_o  (uart_busy)
  );

  assign led = {cycles[24], 2'b00, uart_busy, locked, fault, exit && exit_code != '0, exit};

  // The fault's address and the counter's other bits are for a test bench; a board shows only that they happened.
  logic unused_status;
  assign unused_status = ^{fault_addr, cycles[63:25], cycles[23:0]};
endmodule
