// The SoC's peripheral registers (uncached: the core sends every access at or above 0x8000_0000 to the bus):
//   0x0 TX      write: one byte of the firmware's text output (the test bench reads it off tx_valid_o/tx_data_o);
//               the write waits, unacknowledged, while tx_ready_i is low (a board's UART with a full FIFO)
//   0x4 EXIT    write: the firmware ended with this code; the test bench stops on exit_o
//   0x8 CYCLES  read: the low word of a free-running cycle counter (the bus-side check of the core's mcycle)
//   0xC CYCLESH read: its high word, sampled when CYCLES was read
module tc_soc_io (
  input  logic        clk_i,
  input  logic        rst_ni,
  input  logic        stb_i,
  input  logic        we_i,
  input  logic [1:0]  adr_i,  // word address within the block
  input  logic [31:0] dat_i,
  output logic        ack_o,
  output logic [31:0] dat_o,
  output logic        tx_valid_o,
  output logic [7:0]  tx_data_o,
  input  logic        tx_ready_i,  // the TX sink takes a byte next cycle (tied high in simulation)
  output logic        exit_o,
  output logic [31:0] exit_code_o,
  output logic [63:0] cycles_o
);
  logic        ack_q, tx_valid_q, exit_q;
  logic [7:0]  tx_data_q;
  logic [31:0] exit_code_q, dat_q, cycles_hi_q;
  logic [63:0] cycles_q;
  logic        req;

  // A TX write is held off while the sink is full, so the core stalls instead of a byte being lost.
  assign req = stb_i && !ack_q && !(we_i && adr_i == 2'd0 && !tx_ready_i);

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      ack_q       <= 1'b0;
      tx_valid_q  <= 1'b0;
      tx_data_q   <= '0;
      exit_q      <= 1'b0;
      exit_code_q <= '0;
      dat_q       <= '0;
      cycles_q    <= '0;
      cycles_hi_q <= '0;
    end else begin
      ack_q      <= req;
      cycles_q   <= cycles_q + 64'd1;
      tx_valid_q <= req && we_i && adr_i == 2'd0;
      if (req && we_i && adr_i == 2'd0) begin
        tx_data_q <= dat_i[7:0];
      end
      if (req && we_i && adr_i == 2'd1) begin
        exit_q      <= 1'b1;
        exit_code_q <= dat_i;
      end
      if (req && !we_i) begin
        unique case (adr_i)
          2'd2: begin
            dat_q       <= cycles_q[31:0];
            cycles_hi_q <= cycles_q[63:32];  // read CYCLES then CYCLESH: one consistent 64-bit value
          end
          2'd3:    dat_q <= cycles_hi_q;
          default: dat_q <= '0;
        endcase
      end
    end
  end

  assign ack_o       = ack_q;
  assign dat_o       = dat_q;
  assign tx_valid_o  = tx_valid_q;
  assign tx_data_o   = tx_data_q;
  assign exit_o      = exit_q;
  assign exit_code_o = exit_code_q;
  assign cycles_o    = cycles_q;
endmodule
