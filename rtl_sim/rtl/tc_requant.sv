// One post-processing lane, pipelined: bias, optional left shift, TFLite requantization (double
// or single rounding), output zero point and clamp. Bit-exact with tinycompile.quant.intmath:
//   t   = wrap32((acc + bias) << lshift)
//   r32 = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(t, mult), shift)   single_i = 0
//   r32 = sat32((t * mult + 2^(30 + shift)) >> (31 + shift))                         single_i = 1
//   q8  = clamp(r32 + zp, lo, hi)
// Single rounding (requantize_single, TFLite's int8 fully connected) rounds the exact product
// once, half up: with x = floor(t * mult / 2^31) and h = bit 30 of t * mult it is x + h for
// shift 0 and floor(x / 2^shift) + x[shift-1] otherwise. Its one result outside int32,
// t = mult = -2^31 at shift 0 (2^31), saturates to 2^31 - 1 (q8 is the same either way).
// Latency 5 cycles, one operation per cycle: acc/bias/lshift/mult/shift/single are sampled at the
// edge ending cycle c, r32_o and q8_o show that operation's result in cycle c + 5. zp/lo/hi are
// sampled at the edge ending cycle c + 3, with stage 4 (the post-processing unit keeps them
// constant for a whole instruction). Stages (registers at the end of each):
//   1  t = (acc + bias) << lshift
//   2  four 16 x 16 partial products of t * mult (one DSP multiplier each)
//   3  sum of the partial products, bits 62:31: SRDHM (rounded) or, single, floor and bit 30
//   4  rounding right shift: floor(x / 2^shift) and the round-up bit; the clamp bounds moved
//      by the zero point (lo - zp, hi - zp, each also less one)
//   5  add the round-up bit (r32); q8 = the bound the result passes, else its low byte + zp
// Pure datapath registers, no reset. The post-processing unit's LaneLatency must match.
module tc_requant (
  input  logic        clk_i,
  input  logic [31:0] acc_i,
  input  logic [31:0] bias_i,
  input  logic [4:0]  lshift_i,
  input  logic [31:0] mult_i,
  input  logic [4:0]  shift_i,
  input  logic        single_i,
  input  logic [7:0]  zp_i,
  input  logic [7:0]  lo_i,
  input  logic [7:0]  hi_i,
  output logic [31:0] r32_o,
  output logic [7:0]  q8_o
);
  // ---- stage 1: bias and left shift
  logic [31:0] t1_d, t1_q, m1_q;
  logic [4:0]  sh1_q;
  logic        sg1_q;

  always_comb begin
    t1_d = (acc_i + bias_i) << lshift_i;
  end

  always_ff @(posedge clk_i) begin
    t1_q <= t1_d;
    m1_q <= mult_i;
    sh1_q <= shift_i;
    sg1_q <= single_i;
  end

  // ---- stage 2: t * mult as four partial products. With t = th*2^16 + tl and m = mh*2^16 + ml
  // (th, mh signed, tl, ml unsigned) every product fits a signed 32-bit value:
  // |tl * mh| <= (2^16 - 1) * 2^15 < 2^31, |th * mh| <= 2^30.
  logic [15:0]        pll_d, pll_q;  // bits 31:16 of tl * ml (bits 15:0 cannot carry into SRDHM)
  logic signed [31:0] plh_d, plh_q, phl_d, phl_q, phh_d, phh_q;
  logic               ovf2_d, ovf2_q;
  logic [4:0]         sh2_q;
  logic               sg2_q;
  // Operands as 17-bit signed values: each product is at most 17 x 17 bits (one DSP block).
  logic signed [16:0] tl, th, ml, mh;
  /* verilator lint_off UNUSEDSIGNAL */
  logic signed [33:0] pll_full, plh_full, phl_full, phh_full;
  /* verilator lint_on UNUSEDSIGNAL */

  always_comb begin
    tl = $signed({1'b0, t1_q[15:0]});
    th = $signed({t1_q[31], t1_q[31:16]});
    ml = $signed({1'b0, m1_q[15:0]});
    mh = $signed({m1_q[31], m1_q[31:16]});
    pll_full = tl * ml;
    plh_full = tl * mh;
    phl_full = th * ml;
    phh_full = th * mh;
    pll_d = pll_full[31:16];
    plh_d = plh_full[31:0];
    phl_d = phl_full[31:0];
    phh_d = phh_full[31:0];
    // The one product that does not fit SRDHM's result: (-2^31) * (-2^31) saturates.
    ovf2_d = (t1_q == 32'h8000_0000) && (m1_q == 32'h8000_0000);
  end

  always_ff @(posedge clk_i) begin
    pll_q <= pll_d;
    plh_q <= plh_d;
    phl_q <= phl_d;
    phh_q <= phh_d;
    ovf2_q <= ovf2_d;
    sh2_q <= sh1_q;
    sg2_q <= sg1_q;
  end

  // ---- stage 3: SRDHM = trunc((ab + nudge) / 2^31), nudge = 2^30 (ab >= 0) or 1 - 2^30 (ab < 0).
  // Both cases equal floor((ab + 2^30) / 2^31): for ab < 0 the truncating division is
  // floor((ab + 1 - 2^30 + 2^31 - 1) / 2^31). ab = phh*2^32 + pll + (plh + phl)*2^16; its low 16
  // bits are those of tl * ml and cannot carry, so the sum runs over bits 63:16 only.
  // Single rounding adds no nudge: x = floor(ab / 2^31), and half = bit 30 of ab goes to stage 4.
  // (-2^31) * (-2^31) = 2^62 gives x = 2^31 in both modes, saturated to 2^31 - 1 (for single
  // rounding that is exact for shift >= 1, see stage 4, and saturates the result for shift 0).
  logic signed [32:0] mid;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [47:0]        ab_hi;  // (ab + nudge) >> 16; bits 46:15 are the quotient, bit 14 is ab[30]
  /* verilator lint_on UNUSEDSIGNAL */
  logic [31:0]        x3_d, x3_q;
  logic               h3_d, h3_q;
  logic [4:0]         sh3_q;
  logic               sg3_q;

  always_comb begin
    mid = 33'(plh_q) + 33'(phl_q) + (sg2_q ? 33'sd0 : 33'sd16384);  // + 2^30 >> 16 (double)
    ab_hi = {phh_q, pll_q} + {{15{mid[32]}}, mid};
    x3_d = ovf2_q ? 32'h7FFF_FFFF : ab_hi[46:15];
    h3_d = sg2_q && ab_hi[14];  // 0 in double mode, so stage 4 is unchanged there
  end

  always_ff @(posedge clk_i) begin
    x3_q <= x3_d;
    h3_q <= h3_d;
    sh3_q <= sh2_q;
    sg3_q <= sg2_q;
  end

  // ---- stage 4: RoundingDivideByPOT(x, s), ties away from zero. For s >= 1 it rounds up when
  // bit s-1 of x is set and, for negative x, some bit below it is set too (s = 0: never).
  // Single rounding, half up: floor((ab + 2^(30+s)) / 2^(31+s)) = floor((x + 2^(s-1)) / 2^s) for
  // s >= 1 (2^(30+s) is a multiple of 2^31), i.e. it rounds up when bit s-1 of x is set; for s = 0
  // it is x + half.
  // The zero point and the clamp bounds are registered here as bounds on the result before the
  // zero point, so that stage 5 compares instead of adding first (r + zp < lo <=> r < lo - zp):
  // with r = floor + up, r < tlo <=> floor < tlo - up, one of two precomputed bounds.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [32:0] xs;  // only bit 0 is used
  /* verilator lint_on UNUSEDSIGNAL */
  logic [31:0]        below, fl4_d, fl4_q;
  logic               up4_d, up4_q;
  logic signed [9:0]  tlo_d, thi_d, tlo4_q, thi4_q, tlo1_4_q, thi1_4_q;  // in [-256, 255]
  logic [7:0]         zp4_q, lo4_q, hi4_q;

  always_comb begin
    xs = {x3_q, h3_q} >> sh3_q;                      // xs[0] = x[s-1]; for s = 0 half (0: double)
    below = ((32'd1 << sh3_q) - 32'd1) >> 1;         // bits s-2..0
    fl4_d = $unsigned($signed(x3_q) >>> sh3_q);
    up4_d = xs[0] && (sg3_q || !x3_q[31] || ((x3_q & below) != '0));
    tlo_d = 10'($signed(lo_i)) - 10'($signed(zp_i));
    thi_d = 10'($signed(hi_i)) - 10'($signed(zp_i));
  end

  always_ff @(posedge clk_i) begin
    fl4_q <= fl4_d;
    up4_q <= up4_d;
    tlo4_q <= tlo_d;
    thi4_q <= thi_d;
    tlo1_4_q <= tlo_d - 10'sd1;
    thi1_4_q <= thi_d - 10'sd1;
    zp4_q <= zp_i;
    lo4_q <= lo_i;
    hi4_q <= hi_i;
  end

  // ---- stage 5: r32 = floor + up; q8 = clamp(r32 + zp, lo, hi) as: lo when r32 < lo - zp, else hi
  // when r32 > hi - zp, else the low byte of r32 + zp (then in [lo, hi], int8). For int8 lo and hi
  // this equals saturating r32 + zp to int8 and then clamping, for any lo, hi (lo wins when
  // lo > hi, as there). The comparisons and the 8-bit add run side by side.
  logic [31:0]       r5_d, r5_q;
  logic              lt5, gt5;
  logic [7:0]        low5, q5_d, q5_q;

  always_comb begin
    r5_d = fl4_q + {31'd0, up4_q};
    lt5 = $signed(fl4_q) < 32'($signed(up4_q ? tlo1_4_q : tlo4_q));
    gt5 = $signed(fl4_q) > 32'($signed(up4_q ? thi1_4_q : thi4_q));
    low5 = fl4_q[7:0] + zp4_q + {7'd0, up4_q};
    if (lt5) begin
      q5_d = lo4_q;
    end else if (gt5) begin
      q5_d = hi4_q;
    end else begin
      q5_d = low5;
    end
  end

  always_ff @(posedge clk_i) begin
    r5_q <= r5_d;
    q5_q <= q5_d;
  end

  assign r32_o = r5_q;
  assign q8_o = q5_q;
endmodule
