// The accelerator's memory inside the SoC: N-byte words, shared by the accelerator's memory port (one request per
// cycle, read data one cycle later, in order) and the core's data bus (32-bit Wishbone slave, two cycles per access
// like the SoC's other memory), through which the firmware writes the program, weights and inputs and reads results.
// Storage has no reset (block RAM). A word the core and the accelerator write in the same cycle is a firmware bug
// and ends up with either value. An accelerator request beyond the memory is flagged on oob_o (the access wraps).
module tc_soc_accel_mem #(
  parameter int unsigned N     = 8,     // bytes per accelerator word (4, 8 or 16)
  parameter int unsigned Words = 4096,  // N-byte words
  parameter int unsigned Lanes = N / 4,  // 32-bit lanes per word
  parameter int unsigned LaneBits = $clog2(Lanes),  // core address bits that pick the lane (0 for N = 4)
  parameter int unsigned LaneW = (Lanes > 1) ? LaneBits : 1,
  parameter int unsigned AddrW = $clog2(Words)
) (
  input  logic                   clk_i,
  input  logic                   rst_ni,
  // accelerator port (tc_accel's memory interface)
  input  logic                   req_valid_i,
  output logic                   req_ready_o,
  input  logic                   req_we_i,
  input  logic [31:0]            req_addr_i,  // word address
  input  logic [8*N-1:0]         req_wdata_i,
  output logic                   rsp_valid_o,
  output logic [8*N-1:0]         rsp_rdata_o,
  output logic                   oob_o,  // this cycle's accelerator request lies beyond the memory
  // core port (Wishbone, 32-bit word address within the memory)
  input  logic                   b_stb_i,
  input  logic                   b_we_i,
  input  logic [3:0]             b_sel_i,
  input  logic [AddrW+LaneBits-1:0] b_adr_i,
  input  logic [31:0]            b_dat_i,
  output logic                   b_ack_o,
  output logic [31:0]            b_dat_o
);
  // no_rw_check: a word read in the cycle it is written may read old or new data (nothing relies on it; see
  // tc_soc_ram), so yosys maps the two ports onto the block RAM's two ports.
  (* no_rw_check *) logic [8*N-1:0] mem_q [Words];
  logic [8*N-1:0]   rsp_q;
  logic [8*N-1:0]   b_word_q;
  logic             rsp_valid_q, b_ack_q;
  logic [AddrW-1:0] a_idx, b_idx;
  logic [LaneW-1:0] b_lane, b_lane_q;

  assign a_idx = req_addr_i[AddrW-1:0];
  if (Lanes > 1) begin : g_lanes
    assign b_idx  = b_adr_i[AddrW+LaneW-1:LaneW];
    assign b_lane = b_adr_i[LaneW-1:0];
  end else begin : g_one_lane
    assign b_idx  = b_adr_i;
    assign b_lane = '0;
  end

  // One process per port: yosys maps the memory onto a true dual-port block RAM only when neither port's write
  // has priority over the other's, as writes in one process would.
  always_ff @(posedge clk_i) begin
    if (req_valid_i && req_we_i) begin
      mem_q[a_idx] <= req_wdata_i;
    end
    rsp_q <= mem_q[a_idx];
  end

  always_ff @(posedge clk_i) begin
    if (b_stb_i && b_we_i && !b_ack_q) begin
      for (int i = 0; i < 4; i++) begin
        if (b_sel_i[i]) begin
          mem_q[b_idx][32*b_lane+8*i +: 8] <= b_dat_i[8*i +: 8];
        end
      end
    end
    // the whole word, its lane picked after the register: a block RAM's read port is the register itself
    b_word_q <= mem_q[b_idx];
    b_lane_q <= b_lane;
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      rsp_valid_q <= 1'b0;
      b_ack_q     <= 1'b0;
    end else begin
      rsp_valid_q <= req_valid_i && !req_we_i;
      b_ack_q     <= b_stb_i && !b_ack_q;
    end
  end

  assign req_ready_o = 1'b1;
  assign oob_o       = req_valid_i && req_addr_i[31:AddrW] != '0;
  assign rsp_valid_o = rsp_valid_q;
  assign rsp_rdata_o = rsp_q;
  assign b_ack_o     = b_ack_q;
  assign b_dat_o     = b_word_q[32*b_lane_q +: 32];
endmodule
