// Load unit: executes LOAD (and SYNC) instructions from the load queue. A LOAD walks the
// tc_agu pattern; in-bounds elements become N-byte memory reads, out-of-bounds elements are
// written as the pad byte replicated (zero-point padding), all into consecutive scratchpad words
// starting at sp_base. Reads are pipelined: the scratchpad address of every outstanding read waits
// in a FIFO until its in-order response arrives. A read request is first placed in a one-entry
// slot register (req_valid_o / req_addr_o come from flops, so the memory arbiter's grant does not
// wait for this unit's decode); the slot refills in the cycle it is accepted, one read per cycle.
module tc_load #(
  parameter int unsigned N          = 8,
  parameter int unsigned InpDepth   = 4096,
  parameter int unsigned WgtRows    = 4096,
  parameter int unsigned ParamWords = 768,
  parameter int unsigned PendDepth  = 8
) (
  input  logic           clk_i,
  input  logic           rst_ni,
  // instruction queue head
  // Only this queue's fields are decoded; the rest of the word is reserved.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [255:0]   instr_i,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic           instr_valid_i,
  output logic           instr_pop_o,
  // dependency tokens (next = compute)
  input  logic           tok_next_i,
  output logic           tok_pop_next_o,
  output logic           tok_push_next_o,
  // memory requester
  output logic           req_valid_o,
  input  logic           req_ready_i,
  output logic [31:0]    req_addr_o,
  input  logic           rsp_valid_i,
  input  logic [8*N-1:0] rsp_rdata_i,
  // scratchpad write port
  output logic           sp_we_o,
  output logic [1:0]     sp_sel_o,
  output logic [15:0]    sp_addr_o,
  output logic [8*N-1:0] sp_wdata_o,
  // status
  output logic           busy_o,
  output logic           err_o,
  output logic [3:0]     err_code_o
);
  localparam int unsigned LogN = $clog2(N);
  localparam logic [3:0] OpLoad = 4'd1;
  localparam logic [3:0] ErrSpRange = 4'd2;
  localparam logic [3:0] ErrAlign = 4'd3;

  typedef enum logic [2:0] {StIdle, StStart, StRun, StDrain, StFinish} state_e;
  state_e state_d, state_q;

  logic [16:0] spa_d, spa_q;
  logic        agu_start, agu_next, agu_valid, agu_inb;
  logic [31:0] agu_addr;
  logic        pend_full, pend_empty, pend_push;
  logic [15:0] pend_head;
  logic [16:0] limit, spa_inc;
  logic        room_d, room_q, room_inc;
  logic        misaligned, range_err;
  logic        slot_d, slot_q, slot_free;
  logic [31:0] slot_addr_d, slot_addr_q;

  wire [3:0]  op      = instr_i[3:0];
  wire        pop_nx  = instr_i[5];
  wire        push_nx = instr_i[7];
  wire [1:0]  sp      = instr_i[9:8];
  wire [15:0] sp_base = instr_i[31:16];
  wire [7:0]  pad     = instr_i[231:224];

  tc_agu u_agu (
    .clk_i,
    .rst_ni,
    .start_i(agu_start),
    .base_i (instr_i[63:32]),
    .d0_i   (instr_i[119:100]),
    .d1_i   (instr_i[139:120]),
    .d2_i   (instr_i[159:140]),
    .n0_i   (instr_i[75:64]),
    .n1_i   (instr_i[87:76]),
    .n2_i   (instr_i[99:88]),
    .y0_i   (instr_i[171:160]),
    .x0_i   (instr_i[183:172]),
    .sy0_i  (instr_i[187:184]),
    .sx0_i  (instr_i[191:188]),
    .sy1_i  (instr_i[195:192]),
    .sx1_i  (instr_i[199:196]),
    .h_i    (instr_i[211:200]),
    .w_i    (instr_i[223:212]),
    .next_i (agu_next),
    .valid_o(agu_valid),
    .addr_o (agu_addr),
    .inb_o  (agu_inb)
  );

  tc_fifo #(.Width(16), .Depth(PendDepth)) u_pend (
    .clk_i,
    .rst_ni,
    .push_i (pend_push),
    .wdata_i(spa_q[15:0]),
    .full_o (pend_full),
    .pop_i  (rsp_valid_i),
    .rdata_o(pend_head),
    .empty_o(pend_empty)
  );

  always_comb begin
    unique case (sp)
      2'd0:    limit = 17'(InpDepth);
      2'd1:    limit = 17'(WgtRows);
      default: limit = 17'(ParamWords);
    endcase
  end

  // All byte addresses and strides must be multiples of N (the bus is N bytes wide).
  if (LogN > 0) begin : g_align
    assign misaligned = (instr_i[32 +: LogN] != '0) || (instr_i[100 +: LogN] != '0) ||
                        (instr_i[120 +: LogN] != '0) || (instr_i[140 +: LogN] != '0);
  end else begin : g_noalign
    assign misaligned = 1'b0;
  end

  // room_q = (spa_q < limit), kept as a flag so the range check is a flop on the request path.
  assign spa_inc   = spa_q + 17'd1;
  assign room_inc  = (spa_inc < limit);
  assign range_err = (state_q == StRun) && agu_valid && !room_q;
  // The slot can take a new read this cycle (empty, or its read is accepted now).
  assign slot_free = !slot_q || req_ready_i;

  always_comb begin
    state_d = state_q;
    spa_d = spa_q;
    room_d = room_q;
    slot_d = slot_q && !req_ready_i;
    slot_addr_d = slot_addr_q;
    agu_start = 1'b0;
    agu_next = 1'b0;
    pend_push = 1'b0;
    instr_pop_o = 1'b0;
    tok_pop_next_o = 1'b0;
    tok_push_next_o = 1'b0;
    err_o = 1'b0;
    err_code_o = 4'd0;
    sp_we_o = 1'b0;
    sp_addr_o = pend_head;
    sp_wdata_o = rsp_rdata_i;
    if (rsp_valid_i) begin
      sp_we_o = 1'b1;
    end
    unique case (state_q)
      StIdle: begin
        if (instr_valid_i && (!pop_nx || tok_next_i)) begin
          tok_pop_next_o = pop_nx;
          state_d = (op == OpLoad) ? StStart : StFinish;
        end
      end
      StStart: begin
        if (misaligned) begin
          err_o = 1'b1;
          err_code_o = ErrAlign;
        end else begin
          agu_start = 1'b1;
          spa_d = {1'b0, sp_base};
          room_d = ({1'b0, sp_base} < limit);
          state_d = StRun;
        end
      end
      StRun: begin
        if (!agu_valid) begin
          state_d = StDrain;
        end else if (range_err) begin
          err_o = 1'b1;
          err_code_o = ErrSpRange;
        end else if (agu_inb) begin
          // The scratchpad address enters the pending FIFO as the read enters the slot.
          if (!pend_full && slot_free) begin
            pend_push = 1'b1;
            agu_next = 1'b1;
            spa_d = spa_inc;
            room_d = room_inc;
            slot_d = 1'b1;
            slot_addr_d = agu_addr >> LogN;
          end
        end else if (!rsp_valid_i) begin
          // Padding word: the write port is free this cycle (responses have priority).
          sp_we_o = 1'b1;
          sp_addr_o = spa_q[15:0];
          sp_wdata_o = {N{pad}};
          agu_next = 1'b1;
          spa_d = spa_inc;
          room_d = room_inc;
        end
      end
      StDrain: begin
        if (pend_empty) begin
          state_d = StFinish;
        end
      end
      StFinish: begin
        tok_push_next_o = push_nx;
        instr_pop_o = 1'b1;
        state_d = StIdle;
      end
      default: state_d = StIdle;
    endcase
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      spa_q <= '0;
      room_q <= 1'b0;
      slot_q <= 1'b0;
      slot_addr_q <= '0;
    end else begin
      state_q <= state_d;
      spa_q <= spa_d;
      room_q <= room_d;
      slot_q <= slot_d;
      slot_addr_q <= slot_addr_d;
    end
  end

  assign sp_sel_o = sp;
  assign req_valid_o = slot_q;
  assign req_addr_o = slot_addr_q;
  assign busy_o = (state_q != StIdle);
endmodule
