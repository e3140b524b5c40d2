// A serial transmitter for the SoC's text output on a board: 8 data bits, no parity, one stop bit, least
// significant bit first, behind a byte FIFO. The core writes a byte every few cycles while the line sends one every
// ~10 x ClksPerBit cycles, so the FIFO absorbs bursts and ready_o holds the core's TX write off when it is full
// (nothing is dropped). Its storage has no reset, so an FPGA maps it onto block RAM (2048 bytes: one ECP5 DP16KD).
module tc_soc_uart_tx #(
  parameter int unsigned ClksPerBit = 217,   // the clock over the baud rate (25 MHz / 115200 = 217)
  parameter int unsigned FifoDepth  = 2048,  // bytes; a power of two
  parameter int unsigned PtrW       = $clog2(FifoDepth),
  parameter int unsigned CntW       = $clog2(ClksPerBit)
) (
  input  logic       clk_i,
  input  logic       rst_ni,
  input  logic       valid_i,  // data_i is a byte to send (only while ready_o was high the cycle before)
  input  logic [7:0] data_i,
  output logic       ready_o,  // the FIFO has room for a byte
  output logic       tx_o,     // the serial line, high when idle
  output logic       busy_o    // a byte is queued or on the line
);
  logic [7:0]    fifo_q [FifoDepth];
  logic [7:0]    head_q;                // the byte at the read pointer, read a cycle after the pointer settles
  logic [PtrW:0] wr_ptr_q, rd_ptr_q;    // one bit wider than an index: full and empty differ in it
  logic          empty, full, fetch_q;
  logic [9:0]    frame_q;               // stop bit, data, start bit; shifted out from bit 0
  logic [3:0]    bits_q;                // bits of the frame still to send; 0 when the line is idle
  logic [CntW-1:0] count_q;             // clock cycles left in the current bit

  assign empty = wr_ptr_q == rd_ptr_q;
  assign full  = wr_ptr_q == {~rd_ptr_q[PtrW], rd_ptr_q[PtrW-1:0]};

  // The FIFO's memory: one write port, one registered read port (block RAM).
  always_ff @(posedge clk_i) begin
    if (valid_i && !full) begin
      fifo_q[wr_ptr_q[PtrW-1:0]] <= data_i;
    end
    head_q <= fifo_q[rd_ptr_q[PtrW-1:0]];
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      wr_ptr_q <= '0;
      rd_ptr_q <= '0;
      fetch_q  <= 1'b0;
      frame_q  <= '1;
      bits_q   <= '0;
      count_q  <= '0;
    end else begin
      if (valid_i && !full) begin
        wr_ptr_q <= wr_ptr_q + 1'b1;
      end
      // An idle line with a byte queued waits one cycle (fetch_q) for head_q to read it, then starts its frame.
      fetch_q <= bits_q == '0 && !empty && !fetch_q;
      if (fetch_q) begin
        frame_q  <= {1'b1, head_q, 1'b0};
        bits_q   <= 4'd10;
        count_q  <= CntW'(ClksPerBit - 1);
        rd_ptr_q <= rd_ptr_q + 1'b1;
      end else if (bits_q != '0) begin
        if (count_q == '0) begin
          frame_q <= {1'b1, frame_q[9:1]};
          bits_q  <= bits_q - 4'd1;
          count_q <= CntW'(ClksPerBit - 1);
        end else begin
          count_q <= count_q - 1'b1;
        end
      end
    end
  end

  assign ready_o = !full;
  assign tx_o    = bits_q == '0 ? 1'b1 : frame_q[0];
  assign busy_o  = !empty || bits_q != '0 || fetch_q;
endmodule
