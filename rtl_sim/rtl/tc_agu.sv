// Address generator for LOAD and STORE: a three-level loop nest
//   for i2 < n2: for i1 < n1: for i0 < n0:
//     addr = base + i2*d2 + i1*d1 + i0*d0                  (bytes)
//     y    = y0 + i1*sy1 + i0*sy0,  x = x0 + i1*sx1 + i0*sx0
//     in bounds iff 0 <= y < H and 0 <= x < W
// Everything is kept as running sums, so no multiplier is needed. The pattern inputs must stay
// stable while the generator is busy (the owning unit holds its instruction at the queue head).
module tc_agu (
  input  logic        clk_i,
  input  logic        rst_ni,
  input  logic        start_i,
  input  logic [31:0] base_i,
  input  logic [19:0] d0_i,
  input  logic [19:0] d1_i,
  input  logic [19:0] d2_i,
  input  logic [11:0] n0_i,
  input  logic [11:0] n1_i,
  input  logic [11:0] n2_i,
  input  logic [11:0] y0_i,
  input  logic [11:0] x0_i,
  input  logic [3:0]  sy0_i,
  input  logic [3:0]  sx0_i,
  input  logic [3:0]  sy1_i,
  input  logic [3:0]  sx1_i,
  input  logic [11:0] h_i,
  input  logic [11:0] w_i,
  input  logic        next_i,
  output logic        valid_o,
  output logic [31:0] addr_o,
  output logic        inb_o
);
  logic        busy_d, busy_q;
  logic [11:0] i0_d, i0_q, i1_d, i1_q, i2_d, i2_q;
  logic [31:0] acur_d, acur_q, arow_d, arow_q, apl_d, apl_q;
  logic [19:0] ycur_d, ycur_q, yrow_d, yrow_q, xcur_d, xcur_q, xrow_d, xrow_q;
  logic [31:0] d0x, d1x, d2x;
  logic [19:0] y0x, x0x, sy0x, sx0x, sy1x, sx1x, hx, wx;

  assign d0x  = {{12{d0_i[19]}}, d0_i};
  assign d1x  = {{12{d1_i[19]}}, d1_i};
  assign d2x  = {{12{d2_i[19]}}, d2_i};
  assign y0x  = {{8{y0_i[11]}}, y0_i};
  assign x0x  = {{8{x0_i[11]}}, x0_i};
  assign sy0x = {16'd0, sy0_i};
  assign sx0x = {16'd0, sx0_i};
  assign sy1x = {16'd0, sy1_i};
  assign sx1x = {16'd0, sx1_i};
  assign hx   = {8'd0, h_i};
  assign wx   = {8'd0, w_i};

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
      busy_d = (n0_i != '0) && (n1_i != '0) && (n2_i != '0);
      i0_d = '0;
      i1_d = '0;
      i2_d = '0;
      acur_d = base_i;
      arow_d = base_i;
      apl_d = base_i;
      ycur_d = y0x;
      yrow_d = y0x;
      xcur_d = x0x;
      xrow_d = x0x;
    end else if (busy_q && next_i) begin
      if (i0_q + 12'd1 < n0_i) begin
        i0_d = i0_q + 12'd1;
        acur_d = acur_q + d0x;
        ycur_d = ycur_q + sy0x;
        xcur_d = xcur_q + sx0x;
      end else if (i1_q + 12'd1 < n1_i) begin
        i0_d = '0;
        i1_d = i1_q + 12'd1;
        arow_d = arow_q + d1x;
        acur_d = arow_q + d1x;
        yrow_d = yrow_q + sy1x;
        ycur_d = yrow_q + sy1x;
        xrow_d = xrow_q + sx1x;
        xcur_d = xrow_q + sx1x;
      end else if (i2_q + 12'd1 < n2_i) begin
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
endmodule
