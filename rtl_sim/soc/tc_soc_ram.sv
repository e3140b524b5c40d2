// The SoC's one memory: code, constants and data, with two Wishbone (classic) slave ports, the core's instruction
// bus on A (read only) and its data bus on B. A read or write takes two cycles (the acknowledge is registered), as
// an on-chip block RAM behind LiteX's Wishbone SRAM does. Storage has no reset: it maps onto FPGA block RAM and the
// firmware image fills it: named at run time in simulation, or by InitFile (a $readmemh image) on an FPGA, where
// the image becomes the block RAM's initial contents in the bitstream.
module tc_soc_ram #(
  parameter int unsigned Words = 1024,
  parameter              InitFile = "",
  parameter int unsigned AddrW = $clog2(Words)
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  // port A: instruction fetch
  input  logic             a_stb_i,
  input  logic [AddrW-1:0] a_adr_i,
  output logic             a_ack_o,
  output logic [31:0]      a_dat_o,
  // port B: loads and stores
  input  logic             b_stb_i,
  input  logic             b_we_i,
  input  logic [3:0]       b_sel_i,
  input  logic [AddrW-1:0] b_adr_i,
  input  logic [31:0]      b_dat_i,
  output logic             b_ack_o,
  output logic [31:0]      b_dat_o
);
  // no_rw_check: a read of the word written in the same cycle (on either port) may return old or new data; nothing
  // relies on it (the core ignores a write's read data), and yosys then maps each port onto one block RAM port
  // instead of copying the memory to emulate read-before-write across ports.
  (* no_rw_check *) logic [31:0] mem_q [Words];
  logic [31:0] a_dat_q, b_dat_q;
  logic        a_ack_q, b_ack_q;

`ifndef SYNTHESIS
  // Simulation only (synthesis tools define SYNTHESIS): the test bench names the firmware image (one 32-bit hex
  // word per line) at run time, so one simulation model, built once, runs any firmware.
  initial begin : init_mem
    string path;
    if ($value$plusargs("FIRMWARE=%s", path)) begin
      $readmemh(path, mem_q);
    end
  end
`endif
  if (InitFile != "") begin : g_init
    initial begin : init_file
      $readmemh(InitFile, mem_q);
    end
  end

  always_ff @(posedge clk_i) begin
    a_dat_q <= mem_q[a_adr_i];
    b_dat_q <= mem_q[b_adr_i];
    if (b_stb_i && b_we_i && !b_ack_q) begin
      for (int i = 0; i < 4; i++) begin
        if (b_sel_i[i]) begin
          mem_q[b_adr_i][8*i +: 8] <= b_dat_i[8*i +: 8];
        end
      end
    end
  end

  // One acknowledge per request: a strobe held after its acknowledge is the next request.
  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      a_ack_q <= 1'b0;
      b_ack_q <= 1'b0;
    end else begin
      a_ack_q <= a_stb_i && !a_ack_q;
      b_ack_q <= b_stb_i && !b_ack_q;
    end
  end

  assign a_ack_o = a_ack_q;
  assign a_dat_o = a_dat_q;
  assign b_ack_o = b_ack_q;
  assign b_dat_o = b_dat_q;
endmodule
