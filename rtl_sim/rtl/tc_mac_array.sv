// N x N int8 x int8 -> int32 multiply-accumulate array.
// Each cycle every multiplier (r, c) gets its own input operand x[r][c] and weight W[r][c], and each
// column is reduced: dot[c] = sum_r x[r][c] * W[r][c]. The compute unit chooses the operands:
// a broadcast of one input word (x[r][c] = a[r], the VTA-style matrix-vector product) or, in window
// mode, N different input words (x[r][c] = V[r][c], one per row of the array). The N*N products
// feed N adder trees; accumulation across cycles happens in the compute unit's accumulator stage,
// so the array itself stays purely feed-forward and never stalls.
// Two register stages (latency 2, one row per cycle): the products, then the column sums. The
// products are registered beside the multipliers, so the route from the DSP columns to the adder
// trees gets a cycle of its own (multiplier -> tree -> sum in one cycle was the SoC's critical path
// on the ECP5). Each tree is balanced, its adders only as wide as the partial sums.
module tc_mac_array #(
  parameter int unsigned N  // array size, a power of two (no default: it comes from hw_targets/fpga.yaml)
) (
  input  logic              clk_i,
  input  logic [N*N*8-1:0]  x_i,   // byte r*N + c = x[r][c]
  input  logic [N*N*8-1:0]  w_i,   // byte r*N + c = W[r][c]
  output logic [N*32-1:0]   dot_o  // lane c = dot[c], two cycles after its operands
);
  localparam int LogN = $clog2(N);
  // |x * w| <= 2^14, so a sum of N products fits 16 + log2(N) bits, signed.
  localparam int SumW = 16 + LogN;

  logic [N*N*16-1:0] prod_d, prod_q;  // product r*N + c
  logic [N*32-1:0]   dot_d, dot_q;

  for (genvar c = 0; c < N; c++) begin : g_col
    for (genvar r = 0; r < N; r++) begin : g_row
      logic signed [15:0] x_ext, w_ext;
      assign x_ext = {{8{x_i[(r*N+c)*8+7]}}, x_i[(r*N+c)*8 +: 8]};
      assign w_ext = {{8{w_i[(r*N+c)*8+7]}}, w_i[(r*N+c)*8 +: 8]};
      // 16-bit product is exact: |x * w| <= 2^14.
      assign prod_d[(r*N+c)*16 +: 16] = x_ext * w_ext;
    end
    // Balanced tree: level l adds pairs of the previous level's sums (N >> l of them).
    always_comb begin
      logic [N*SumW-1:0] t;
      for (int r = 0; r < N; r++) begin
        t[r*SumW +: SumW] = {{(SumW - 16){prod_q[(r*N+c)*16+15]}}, prod_q[(r*N+c)*16 +: 16]};
      end
      for (int l = 1; l <= LogN; l++) begin
        for (int i = 0; i < (N >> l); i++) begin
          t[i*SumW +: SumW] = t[(2*i)*SumW +: SumW] + t[(2*i+1)*SumW +: SumW];
        end
      end
      dot_d[c*32 +: 32] = {{(32 - SumW){t[SumW-1]}}, t[0 +: SumW]};
    end
  end

  // Pure datapath registers: no reset needed, validity is tracked by the compute pipeline.
  always_ff @(posedge clk_i) begin
    prod_q <= prod_d;
    dot_q <= dot_d;
  end

  assign dot_o = dot_q;
endmodule
