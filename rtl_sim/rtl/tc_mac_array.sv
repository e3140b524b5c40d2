// N x N int8 x int8 -> int32 multiply-accumulate array.
// Each cycle every multiplier (r, c) gets its own input operand x[r][c] and weight W[r][c], and each
// column is reduced: dot[c] = sum_r x[r][c] * W[r][c]. The compute unit chooses the operands:
// a broadcast of one input word (x[r][c] = a[r], the VTA-style matrix-vector product) or, in window
// mode, N different input words (x[r][c] = V[r][c], one per row of the array). The N*N products
// feed N adder trees; accumulation across cycles happens in the compute unit's accumulator stage,
// so the array itself stays purely feed-forward (one register stage) and never stalls.
module tc_mac_array #(
  parameter int unsigned N  // array size (no default: it comes from hw_targets/fpga.yaml)
) (
  input  logic              clk_i,
  input  logic [N*N*8-1:0]  x_i,   // byte r*N + c = x[r][c]
  input  logic [N*N*8-1:0]  w_i,   // byte r*N + c = W[r][c]
  output logic [N*32-1:0]   dot_o  // lane c = dot[c], registered
);
  logic [N*32-1:0] dot_d, dot_q;

  for (genvar c = 0; c < N; c++) begin : g_col
    logic [N*16-1:0] prod;
    for (genvar r = 0; r < N; r++) begin : g_row
      logic signed [15:0] x_ext, w_ext;
      assign x_ext = {{8{x_i[(r*N+c)*8+7]}}, x_i[(r*N+c)*8 +: 8]};
      assign w_ext = {{8{w_i[(r*N+c)*8+7]}}, w_i[(r*N+c)*8 +: 8]};
      // 16-bit product is exact: |x * w| <= 2^14.
      assign prod[r*16 +: 16] = x_ext * w_ext;
    end
    always_comb begin
      logic [31:0] sum;
      sum = '0;
      for (int r = 0; r < N; r++) begin
        sum = sum + {{16{prod[r*16+15]}}, prod[r*16 +: 16]};
      end
      dot_d[c*32 +: 32] = sum;
    end
  end

  // Pure datapath register: no reset needed, validity is tracked by the compute pipeline.
  always_ff @(posedge clk_i) begin
    dot_q <= dot_d;
  end

  assign dot_o = dot_q;
endmodule
