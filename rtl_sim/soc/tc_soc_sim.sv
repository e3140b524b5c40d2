// Simulation top of the SoC: makes its own 100 MHz clock, so the simulator runs clock edges without waking the
// test bench (cocotb only waits for printed bytes, the exit, a fault or its time-out). Needs Verilator --timing.
module tc_soc_sim #(
  parameter int unsigned MemWords      = 131072,
  parameter int unsigned AccelN        = 0,
  parameter int unsigned AccelMemWords = 1024,
  parameter int unsigned InpDepth      = 1,
  parameter int unsigned WgtTiles      = 1,
  parameter int unsigned AccDepth      = 1,
  parameter int unsigned OutDepth      = 1,
  parameter int unsigned ParamSets     = 1,
  parameter int unsigned InpPorts      = 1
) (
  input  logic        rst_ni,
  output logic        tx_valid_o,
  output logic [7:0]  tx_data_o,
  output logic        exit_o,
  output logic [31:0] exit_code_o,
  output logic        fault_o,
  output logic [31:0] fault_addr_o,
  output logic [63:0] cycles_o
);
  // 5 time units per half period: 100 MHz under the build's --timescale 1ns/1ps.
  logic clk;
  initial begin : clock
    clk = 1'b0;
    forever #5 clk = !clk;
  end

  tc_soc #(
    .MemWords(MemWords), .AccelN(AccelN), .AccelMemWords(AccelMemWords), .InpDepth(InpDepth),
    .WgtTiles(WgtTiles), .AccDepth(AccDepth), .OutDepth(OutDepth), .ParamSets(ParamSets), .InpPorts(InpPorts)
  ) u_soc (
    .clk_i (clk),
    .rst_ni,
    .tx_valid_o,
    .tx_data_o,
    .tx_ready_i (1'b1),  // the test bench takes every byte at once
    .exit_o,
    .exit_code_o,
    .fault_o,
    .fault_addr_o,
    .cycles_o
  );
endmodule
