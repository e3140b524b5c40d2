// One post-processing lane (combinational): bias, optional left shift, TFLite double-rounding
// requantization, output zero point and clamp. Bit-exact with tinycompile.quant.intmath:
//   t   = wrap32((acc + bias) << lshift)
//   r32 = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(t, mult), shift)
//   q8  = clamp(r32 + zp, lo, hi)
module tc_requant (
  input  logic [31:0] acc_i,
  input  logic [31:0] bias_i,
  input  logic [4:0]  lshift_i,
  input  logic [31:0] mult_i,
  input  logic [4:0]  shift_i,
  input  logic [7:0]  zp_i,
  input  logic [7:0]  lo_i,
  input  logic [7:0]  hi_i,
  output logic [31:0] r32_o,
  output logic [7:0]  q8_o
);
  logic [31:0]        t;
  logic signed [63:0] t_ext, m_ext, ab, total;
  // Only the low 32 bits of the quotient survive (the one overflow case saturates separately).
  /* verilator lint_off UNUSEDSIGNAL */
  logic signed [63:0] quot;
  /* verilator lint_on UNUSEDSIGNAL */
  logic               overflow;
  logic [31:0]        srdhm;
  logic [31:0]        mask, rem, thr, shifted;
  logic signed [32:0] sum33, lo33, hi33;

  always_comb begin
    t = (acc_i + bias_i) << lshift_i;
    t_ext = {{32{t[31]}}, t};
    m_ext = {{32{mult_i[31]}}, mult_i};
    ab = t_ext * m_ext;
    // nudge = +2^30 for ab >= 0, 1 - 2^30 otherwise
    total = ab + (ab[63] ? 64'shFFFF_FFFF_C000_0001 : 64'sh0000_0000_4000_0000);
    // C division by 2^31 truncates towards zero: bias negative values before the arithmetic shift.
    quot = total[63] ? ((total + 64'sh7FFF_FFFF) >>> 31) : (total >>> 31);
    overflow = (t == 32'h8000_0000) && (mult_i == 32'h8000_0000);
    srdhm = overflow ? 32'h7FFF_FFFF : quot[31:0];
    // RoundingDivideByPOT: ties away from zero.
    mask = (32'd1 << shift_i) - 32'd1;
    rem = srdhm & mask;
    thr = (mask >> 1) + {31'd0, srdhm[31]};
    shifted = $unsigned($signed(srdhm) >>> shift_i);
    r32_o = shifted + {31'd0, (rem > thr)};
    sum33 = {r32_o[31], r32_o} + {{25{zp_i[7]}}, zp_i};
    lo33 = {{25{lo_i[7]}}, lo_i};
    hi33 = {{25{hi_i[7]}}, hi_i};
    if (sum33 < lo33) begin
      q8_o = lo_i;
    end else if (sum33 > hi33) begin
      q8_o = hi_i;
    end else begin
      q8_o = sum33[7:0];
    end
  end
endmodule
