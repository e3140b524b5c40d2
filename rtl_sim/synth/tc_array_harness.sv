// Synthesis-only wrapper: feeds tc_mac_array from a shift register and folds its outputs, so the
// array can be placed on a small iCE40 (its raw ports exceed the package IO count) for an Fmax.
module tc_array_harness #(
  parameter int unsigned N  // array size, set by estimate.py
) (
  input  logic clk_i,
  input  logic din_i,
  output logic dout_o
);
  logic [2*N*N*8-1:0]  sr_q;
  logic [N*32-1:0]      dot;
  logic                 dout_q;

  always_ff @(posedge clk_i) begin
    sr_q <= {sr_q[2*N*N*8-2:0], din_i};
    dout_q <= ^dot;
  end

  tc_mac_array #(.N(N)) u_array (
    .clk_i,
    .x_i  (sr_q[N*N*8-1:0]),
    .w_i  (sr_q[N*N*8 +: N*N*8]),
    .dot_o(dot)
  );

  assign dout_o = dout_q;
endmodule
