// Free-running test bench top: accelerator + behavioural memory. cocotb only drives the clock,
// reset, start and the load/dump strobes, then waits for done or error; no per-cycle Python.
// Every parameter is set by tinycompile.accel.simulate (sizes from hw_targets/fpga.yaml).
module tc_tb_top #(
  parameter int unsigned N,
  parameter int unsigned MemWords,
  parameter int unsigned InpDepth,
  parameter int unsigned WgtTiles,
  parameter int unsigned AccDepth,
  parameter int unsigned OutDepth,
  parameter int unsigned ParamSets,
  parameter int unsigned InpPorts
) (
  input  logic        clk,
  input  logic        rst_n,
  input  logic        start,
  input  logic [31:0] prog_base,
  input  logic        stall_en,
  input  logic        mem_load,
  input  logic        mem_dump,
  input  logic [2:0]  csr_addr,
  output logic [31:0] csr_rdata,
  output logic        busy,
  output logic        done,
  output logic        error
);
  logic           req_valid, req_ready, req_we, rsp_valid;
  logic [31:0]    req_addr;
  logic [8*N-1:0] req_wdata, rsp_rdata;

  tc_accel #(
    .N(N), .InpDepth(InpDepth), .WgtTiles(WgtTiles), .AccDepth(AccDepth), .OutDepth(OutDepth),
    .ParamSets(ParamSets), .InpPorts(InpPorts)
  ) u_dut (
    .clk_i          (clk),
    .rst_ni         (rst_n),
    .start_i        (start),
    .prog_base_i    (prog_base),
    .csr_addr_i     (csr_addr),
    .csr_rdata_o    (csr_rdata),
    .busy_o         (busy),
    .done_o         (done),
    .error_o        (error),
    .mem_req_valid_o(req_valid),
    .mem_req_ready_i(req_ready),
    .mem_req_we_o   (req_we),
    .mem_req_addr_o (req_addr),
    .mem_req_wdata_o(req_wdata),
    .mem_rsp_valid_i(rsp_valid),
    .mem_rsp_rdata_i(rsp_rdata)
  );

  tc_tb_mem #(.N(N), .Words(MemWords)) u_mem (
    .clk_i      (clk),
    .rst_ni     (rst_n),
    .stall_en_i (stall_en),
    .load_i     (mem_load),
    .dump_i     (mem_dump),
    .req_valid_i(req_valid),
    .req_ready_o(req_ready),
    .req_we_i   (req_we),
    .req_addr_i (req_addr),
    .req_wdata_i(req_wdata),
    .rsp_valid_o(rsp_valid),
    .rsp_rdata_o(rsp_rdata)
  );
endmodule
