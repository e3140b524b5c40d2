// Address generator for LOAD and STORE: a three-level loop nest
//   for i2 < n2: for i1 < n1: for i0 < n0:
//     addr = base + i2*d2 + i1*d1 + i0*d0                  (bytes)
//     y    = y0 + i1*sy1 + i0*sy0,  x = x0 + i1*sx1 + i0*sx0
//     in bounds iff 0 <= y < H and 0 <= x < W
// Everything is kept as running sums, so no multiplier is needed. The pattern fields are decoded
// here, from the instruction word, for both units that walk one (their encoding is shared); the
// word must stay stable while the generator is busy (the owning unit holds its instruction at the
// queue head). misaligned_o flags a base or stride that is not a multiple of the N-byte bus word.
// empty_o: the current loop-0 run lies wholly out of bounds (the coordinate loop 0 does not step
// is outside its bound); skip_i with next_i passes over the run's rest (rest_o elements, this one
// included) in one step, for a LOAD that leaves padding as it is.
module tc_agu #(
  parameter int unsigned N  // bus bytes
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  input  logic                      start_i,
  // Only the address pattern is decoded; the owning unit decodes the rest.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [tc_pkg::InstrW-1:0] instr_i,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic                      next_i,
  input  logic                      skip_i,
  output logic                      valid_o,
  output logic [31:0]               addr_o,
  output logic                      inb_o,
  output logic                      empty_o,
  output logic [11:0]               rest_o,
  output logic                      misaligned_o
);
  localparam int unsigned LogN = $clog2(N);

  logic [tc_pkg::PatBaseW-1:0] base;
  logic [tc_pkg::PatD0W-1:0]   d0;
  logic [tc_pkg::PatD1W-1:0]   d1;
  logic [tc_pkg::PatD2W-1:0]   d2;
  logic [tc_pkg::PatN0W-1:0]   n0;
  logic [tc_pkg::PatN1W-1:0]   n1;
  logic [tc_pkg::PatN2W-1:0]   n2;
  logic [tc_pkg::PatY0W-1:0]   y0;
  logic [tc_pkg::PatX0W-1:0]   x0;
  logic [tc_pkg::PatSy0W-1:0]  sy0;
  logic [tc_pkg::PatSx0W-1:0]  sx0;
  logic [tc_pkg::PatSy1W-1:0]  sy1;
  logic [tc_pkg::PatSx1W-1:0]  sx1;
  logic [tc_pkg::PatHW-1:0]    h;
  logic [tc_pkg::PatWW-1:0]    w;

  assign base = instr_i[tc_pkg::PatBaseLsb +: tc_pkg::PatBaseW];
  assign d0   = instr_i[tc_pkg::PatD0Lsb +: tc_pkg::PatD0W];
  assign d1   = instr_i[tc_pkg::PatD1Lsb +: tc_pkg::PatD1W];
  assign d2   = instr_i[tc_pkg::PatD2Lsb +: tc_pkg::PatD2W];
  assign n0   = instr_i[tc_pkg::PatN0Lsb +: tc_pkg::PatN0W];
  assign n1   = instr_i[tc_pkg::PatN1Lsb +: tc_pkg::PatN1W];
  assign n2   = instr_i[tc_pkg::PatN2Lsb +: tc_pkg::PatN2W];
  assign y0   = instr_i[tc_pkg::PatY0Lsb +: tc_pkg::PatY0W];
  assign x0   = instr_i[tc_pkg::PatX0Lsb +: tc_pkg::PatX0W];
  assign sy0  = instr_i[tc_pkg::PatSy0Lsb +: tc_pkg::PatSy0W];
  assign sx0  = instr_i[tc_pkg::PatSx0Lsb +: tc_pkg::PatSx0W];
  assign sy1  = instr_i[tc_pkg::PatSy1Lsb +: tc_pkg::PatSy1W];
  assign sx1  = instr_i[tc_pkg::PatSx1Lsb +: tc_pkg::PatSx1W];
  assign h    = instr_i[tc_pkg::PatHLsb +: tc_pkg::PatHW];
  assign w    = instr_i[tc_pkg::PatWLsb +: tc_pkg::PatWW];

  // All byte addresses and strides must be multiples of N (the bus is N bytes wide).
  if (LogN > 0) begin : g_align
    assign misaligned_o = (base[LogN-1:0] != '0) || (d0[LogN-1:0] != '0) ||
                          (d1[LogN-1:0] != '0) || (d2[LogN-1:0] != '0);
  end else begin : g_noalign
    assign misaligned_o = 1'b0;
  end

  // Datapath: loop counters as wide as the counts, addresses 32 bits, coordinates 20 bits (signed
  // starts plus up to two loops of 4095 steps of 15 cannot overflow them). The extensions below are
  // written for the field widths; verilator -Wall (tests/rtl/test_lint.py) flags them if the ISA
  // ever changes a width.
  logic        busy_d, busy_q;
  logic [11:0] i0_d, i0_q, i1_d, i1_q, i2_d, i2_q;
  logic [31:0] acur_d, acur_q, arow_d, arow_q, apl_d, apl_q;
  logic [19:0] ycur_d, ycur_q, yrow_d, yrow_q, xcur_d, xcur_q, xrow_d, xrow_q;
  logic [31:0] d0x, d1x, d2x;
  logic [19:0] y0x, x0x, sy0x, sx0x, sy1x, sx1x, hx, wx;

  assign d0x  = {{12{d0[19]}}, d0};
  assign d1x  = {{12{d1[19]}}, d1};
  assign d2x  = {{12{d2[19]}}, d2};
  assign y0x  = {{8{y0[11]}}, y0};
  assign x0x  = {{8{x0[11]}}, x0};
  assign sy0x = {16'd0, sy0};
  assign sx0x = {16'd0, sx0};
  assign sy1x = {16'd0, sy1};
  assign sx1x = {16'd0, sx1};
  assign hx   = {8'd0, h};
  assign wx   = {8'd0, w};

  always_comb begin
    busy_d = busy_q;
    i0_d = i0_q;
    i1_d = i1_q;
    i2_d = i2_q;
    acur_d = acur_q;
    arow_d = arow_q;
    apl_d = apl_q;
    ycur_d = ycur_q;
    yrow_d = yrow_q;
    xcur_d = xcur_q;
    xrow_d = xrow_q;
    if (start_i) begin
      busy_d = (n0 != '0) && (n1 != '0) && (n2 != '0);
      i0_d = '0;
      i1_d = '0;
      i2_d = '0;
      acur_d = base;
      arow_d = base;
      apl_d = base;
      ycur_d = y0x;
      yrow_d = y0x;
      xcur_d = x0x;
      xrow_d = x0x;
    end else if (busy_q && next_i) begin
      if (i0_q + 12'd1 < n0 && !skip_i) begin
        i0_d = i0_q + 12'd1;
        acur_d = acur_q + d0x;
        ycur_d = ycur_q + sy0x;
        xcur_d = xcur_q + sx0x;
      end else if (i1_q + 12'd1 < n1) begin
        i0_d = '0;
        i1_d = i1_q + 12'd1;
        arow_d = arow_q + d1x;
        acur_d = arow_q + d1x;
        yrow_d = yrow_q + sy1x;
        ycur_d = yrow_q + sy1x;
        xrow_d = xrow_q + sx1x;
        xcur_d = xrow_q + sx1x;
      end else if (i2_q + 12'd1 < n2) begin
        i0_d = '0;
        i1_d = '0;
        i2_d = i2_q + 12'd1;
        apl_d = apl_q + d2x;
        arow_d = apl_q + d2x;
        acur_d = apl_q + d2x;
        yrow_d = y0x;
        ycur_d = y0x;
        xrow_d = x0x;
        xcur_d = x0x;
      end else begin
        busy_d = 1'b0;
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      busy_q <= 1'b0;
      i0_q <= '0;
      i1_q <= '0;
      i2_q <= '0;
      acur_q <= '0;
      arow_q <= '0;
      apl_q <= '0;
      ycur_q <= '0;
      yrow_q <= '0;
      xcur_q <= '0;
      xrow_q <= '0;
    end else begin
      busy_q <= busy_d;
      i0_q <= i0_d;
      i1_q <= i1_d;
      i2_q <= i2_d;
      acur_q <= acur_d;
      arow_q <= arow_d;
      apl_q <= apl_d;
      ycur_q <= ycur_d;
      yrow_q <= yrow_d;
      xcur_q <= xcur_d;
      xrow_q <= xrow_d;
    end
  end

  assign valid_o = busy_q;
  assign addr_o  = acur_q;
  assign inb_o   = !ycur_q[19] && ($signed(ycur_q) < $signed(hx)) &&
                   !xcur_q[19] && ($signed(xcur_q) < $signed(wx));
  assign empty_o = (sy0 == '0 && (ycur_q[19] || $signed(ycur_q) >= $signed(hx))) ||
                   (sx0 == '0 && (xcur_q[19] || $signed(xcur_q) >= $signed(wx)));
  assign rest_o  = n0 - i0_q;
endmodule
