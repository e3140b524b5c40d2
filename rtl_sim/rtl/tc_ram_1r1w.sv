// Simple dual-port RAM: one synchronous write port, one synchronous read port (read-first).
// Storage has no reset on purpose: it maps onto FPGA block RAM, and the ISA never reads a word
// the program did not write first.
// NoRwCheck = 1 tells synthesis that the read port never reads the word being written in the
// same cycle (the scratchpads the load unit fills and another unit reads are ordered by dependency
// tokens), so yosys maps the RAM onto bare block RAM instead of adding flops and an output
// multiplexer that emulate read-first on a collision; simulation is the same either way.
module tc_ram_1r1w #(
  parameter int unsigned Width     = 32,
  parameter int unsigned Depth     = 256,
  parameter int unsigned AddrW     = (Depth > 1) ? $clog2(Depth) : 1,
  parameter bit          NoRwCheck = 1'b0
) (
  input  logic             clk_i,
  input  logic             we_i,
  input  logic [AddrW-1:0] waddr_i,
  input  logic [Width-1:0] wdata_i,
  input  logic             re_i,
  input  logic [AddrW-1:0] raddr_i,
  output logic [Width-1:0] rdata_o
);
  logic [Width-1:0] rdata_q;

  if (NoRwCheck) begin : g_free
    (* no_rw_check *) logic [Width-1:0] mem_q [0:Depth-1];

    always_ff @(posedge clk_i) begin
      if (we_i) begin
        mem_q[waddr_i] <= wdata_i;
      end
    end

    always_ff @(posedge clk_i) begin
      if (re_i) begin
        rdata_q <= mem_q[raddr_i];
      end
    end
  end else begin : g_rf
    logic [Width-1:0] mem_q [0:Depth-1];

    always_ff @(posedge clk_i) begin
      if (we_i) begin
        mem_q[waddr_i] <= wdata_i;
      end
    end

    always_ff @(posedge clk_i) begin
      if (re_i) begin
        rdata_q <= mem_q[raddr_i];
      end
    end
  end

  assign rdata_o = rdata_q;
endmodule
