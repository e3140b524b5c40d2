// The accelerator's control and status registers on the core's data bus (Wishbone slave, uncached):
//   0x00..0x1C  read: tc_accel's CSRs 0..7 (status, cycles, MAC cycles, load / compute / store busy cycles,
//               instructions, error PC; ISA.md "Host interface")
//   0x20        PROG_BASE: the program's byte address in the accelerator's memory (read/write)
//   0x24        START: a write starts the accelerator at PROG_BASE (ignored while it is busy)
//   0x28        MEM_FAULT: bit 0 set if the accelerator addressed a word beyond its memory since the last start
//   0x2C        MEM_FAULT_ADDR: the first such word address (an out-of-range address is not an error of the
//               accelerator itself: it sees only its port, so the SoC reports it here)
module tc_soc_accel_regs (
  input  logic        clk_i,
  input  logic        rst_ni,
  input  logic        stb_i,
  input  logic        we_i,
  input  logic [3:0]  adr_i,  // word address within the block
  input  logic [31:0] dat_i,
  output logic        ack_o,
  output logic [31:0] dat_o,
  output logic        start_o,
  output logic [31:0] prog_base_o,
  output logic [2:0]  csr_addr_o,
  input  logic [31:0] csr_rdata_i,
  input  logic        busy_i,
  input  logic        oob_i,
  input  logic [31:0] oob_addr_i
);
  logic        ack_q, start_q, req, oob_q;
  logic [31:0] dat_q, prog_base_q, oob_addr_q;

  assign req = stb_i && !ack_q;
  assign csr_addr_o = adr_i[2:0];

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      ack_q       <= 1'b0;
      start_q     <= 1'b0;
      dat_q       <= '0;
      prog_base_q <= '0;
      oob_q       <= 1'b0;
      oob_addr_q  <= '0;
    end else begin
      if (start_q) begin
        oob_q <= 1'b0;
      end else if (oob_i && !oob_q) begin
        oob_q      <= 1'b1;
        oob_addr_q <= oob_addr_i;
      end
      ack_q   <= req;
      start_q <= req && we_i && adr_i == 4'd9 && !busy_i;
      if (req && we_i && adr_i == 4'd8) begin
        prog_base_q <= dat_i;
      end
      if (req && !we_i) begin
        unique case (adr_i)
          4'd8:    dat_q <= prog_base_q;
          4'd10:   dat_q <= {31'd0, oob_q};
          4'd11:   dat_q <= oob_addr_q;
          default: dat_q <= !adr_i[3] ? csr_rdata_i : '0;
        endcase
      end
    end
  end

  assign ack_o       = ack_q;
  assign dat_o       = dat_q;
  assign start_o     = start_q;
  assign prog_base_o = prog_base_q;
endmodule
