// Behavioural external memory for the test bench: N-byte words, in-order, posted writes,
// read responses through a FIFO. With stall_en_i, a 16-bit LFSR randomly withholds req_ready
// (about 1 cycle in 4) and response valid (about 1 in 4), to exercise the valid/ready paths.
// The contents are loaded from / dumped to hex files when the host pulses load_i / dump_i.
module tc_tb_mem #(
  parameter int unsigned N,     // bytes per word
  parameter int unsigned Words  // memory words
) (
  input  logic           clk_i,
  input  logic           rst_ni,
  input  logic           stall_en_i,
  input  logic           load_i,
  input  logic           dump_i,
  input  logic           req_valid_i,
  output logic           req_ready_o,
  input  logic           req_we_i,
  input  logic [31:0]    req_addr_i,
  input  logic [8*N-1:0] req_wdata_i,
  output logic           rsp_valid_o,
  output logic [8*N-1:0] rsp_rdata_o
);
  localparam int unsigned Aw = $clog2(Words);
  logic [8*N-1:0] mem [0:Words-1];
  logic [8*N-1:0] fifo [0:15];
  logic [3:0] wp, rp;
  logic [4:0] cnt;
  logic [15:0] lfsr;
  logic stall_req, stall_rsp, acc, pop;
  string memfile, dumpfile;

  initial begin
    if (!$value$plusargs("MEMFILE=%s", memfile)) memfile = "mem.hex";
    if (!$value$plusargs("DUMPFILE=%s", dumpfile)) dumpfile = "dump.hex";
  end

  assign stall_req = stall_en_i && (lfsr[1:0] == 2'b00);
  assign stall_rsp = stall_en_i && (lfsr[5:4] == 2'b11);
  assign req_ready_o = !stall_req && (cnt < 5'd12);
  assign acc = req_valid_i && req_ready_o;
  assign rsp_valid_o = (cnt != 0) && !stall_rsp;
  assign rsp_rdata_o = fifo[rp];
  assign pop = rsp_valid_o;

  always_ff @(posedge clk_i) begin
    if (load_i) $readmemh(memfile, mem);
    if (dump_i) $writememh(dumpfile, mem);
    lfsr <= {lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]};
    if (!rst_ni) begin
      wp <= '0;
      rp <= '0;
      cnt <= '0;
      if (lfsr == 16'd0) lfsr <= 16'hACE1;
    end else begin
      if (acc && req_we_i) mem[req_addr_i[Aw-1:0]] <= req_wdata_i;
      if (acc && !req_we_i) begin
        fifo[wp] <= mem[req_addr_i[Aw-1:0]];
        wp <= wp + 4'd1;
      end
      if (pop) rp <= rp + 4'd1;
      cnt <= cnt + {4'd0, acc && !req_we_i} - {4'd0, pop};
    end
  end
endmodule
