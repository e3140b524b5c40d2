// Synchronous first-word-fall-through FIFO whose head is a register: rdata_o and empty_o come
// straight from flops (no storage read on the consumer's path). The head register is refilled from
// the storage on a pop, or loaded directly with the pushed word when the storage holds nothing, so
// a pushed word is visible the cycle after the push and a pop per cycle streams, exactly as a
// FIFO with a combinational read would. Holds Depth words in total; Depth must be a power of two.
module tc_fifo #(
  parameter int unsigned Width = 8,
  parameter int unsigned Depth = 4
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  input  logic             push_i,
  input  logic [Width-1:0] wdata_i,
  output logic             full_o,
  input  logic             pop_i,
  output logic [Width-1:0] rdata_o,
  output logic             empty_o
);
  localparam int unsigned PtrW = (Depth > 1) ? $clog2(Depth) : 1;

  logic [Width-1:0] mem_q [0:Depth-1];
  logic [Width-1:0] head_d, head_q;
  logic             hv_d, hv_q;
  logic [PtrW-1:0]  wptr_d, wptr_q, rptr_d, rptr_q;
  logic [PtrW:0]    cnt_d, cnt_q;      // words in the storage (the head register not counted)
  logic             do_push, do_pop, st_empty, st_push, st_pop;

  assign st_empty = (cnt_q == '0);
  assign full_o   = hv_q && (cnt_q == (PtrW+1)'(Depth - 1));
  assign empty_o  = !hv_q;
  assign do_push  = push_i && !full_o;
  assign do_pop   = pop_i && hv_q;
  assign rdata_o  = head_q;

  always_comb begin
    head_d  = head_q;
    hv_d    = hv_q;
    st_push = 1'b0;
    st_pop  = 1'b0;
    if (!hv_q || do_pop) begin
      // The head register is free (or frees up this cycle): refill it, oldest word first.
      if (!st_empty) begin
        head_d = mem_q[rptr_q];
        st_pop = 1'b1;
        st_push = do_push;
      end else begin
        head_d = wdata_i;
        hv_d = do_push;
      end
    end else begin
      st_push = do_push;
    end
  end

  always_comb begin
    wptr_d = wptr_q;
    rptr_d = rptr_q;
    cnt_d  = cnt_q;
    if (st_push) begin
      wptr_d = wptr_q + 1'b1;
    end
    if (st_pop) begin
      rptr_d = rptr_q + 1'b1;
    end
    if (st_push && !st_pop) begin
      cnt_d = cnt_q + 1'b1;
    end else if (!st_push && st_pop) begin
      cnt_d = cnt_q - 1'b1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      hv_q   <= 1'b0;
      wptr_q <= '0;
      rptr_q <= '0;
      cnt_q  <= '0;
    end else begin
      hv_q   <= hv_d;
      wptr_q <= wptr_d;
      rptr_q <= rptr_d;
      cnt_q  <= cnt_d;
    end
  end

  // Data only, no reset needed.
  always_ff @(posedge clk_i) begin
    head_q <= head_d;
    if (st_push) begin
      mem_q[wptr_q] <= wdata_i;
    end
  end
endmodule
