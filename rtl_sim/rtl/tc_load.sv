// Load unit: executes LOAD (and SYNC) instructions from the load queue. A LOAD walks the
// tc_agu pattern; in-bounds elements become N-byte memory reads, out-of-bounds elements are
// written as the pad byte replicated (zero-point padding), all into consecutive scratchpad words
// starting at sp_base. With keep, out-of-bounds elements are not written (the scratchpad keeps the
// padding an earlier LOAD wrote there) and a loop-0 run wholly out of bounds takes one cycle.
// Reads are pipelined: the scratchpad address of every outstanding read waits
// in a FIFO until its in-order response arrives. A read request is first placed in a one-entry
// slot register (req_valid_o / req_addr_o come from flops, so the memory arbiter's grant does not
// wait for this unit's decode); the slot refills in the cycle it is accepted, one read per cycle.
// Scratchpad sizes have no defaults: tc_accel passes its own, which come from hw_targets/fpga.yaml.
module tc_load #(
  parameter int unsigned N,           // bus bytes
  parameter int unsigned InpDepth,    // INP words
  parameter int unsigned WgtRows,     // WGT rows (tiles x N)
  parameter int unsigned ParamWords,  // PARAM words (4 per row of N int32)
  parameter int unsigned PendDepth = 8
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  // instruction queue head
  // Only this queue's fields are decoded; the rest of the word is reserved.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [tc_pkg::InstrW-1:0] instr_i,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic                      instr_valid_i,
  output logic                      instr_pop_o,
  // dependency tokens (next = compute)
  input  logic                      tok_next_i,
  output logic                      tok_pop_next_o,
  output logic                      tok_push_next_o,
  // memory requester
  output logic                      req_valid_o,
  input  logic                      req_ready_i,
  output logic [31:0]               req_addr_o,
  input  logic                      rsp_valid_i,
  input  logic [8*N-1:0]            rsp_rdata_i,
  // scratchpad write port
  output logic                      sp_we_o,
  output logic [tc_pkg::PatSpW-1:0] sp_sel_o,
  output logic [15:0]               sp_addr_o,
  output logic [8*N-1:0]            sp_wdata_o,
  // status
  output logic                      busy_o,
  output logic                      err_o,
  output logic [tc_pkg::ErrW-1:0]   err_code_o
);
  localparam int unsigned LogN = $clog2(N);

  typedef enum logic [2:0] {StIdle, StStart, StRun, StDrain, StFinish} state_e;
  state_e state_d, state_q;

  logic [16:0] spa_d, spa_q;
  logic        agu_start, agu_next, agu_skip, agu_valid, agu_inb, agu_empty;
  logic [11:0] agu_rest;
  logic [31:0] agu_addr;
  logic        pend_full, pend_empty, pend_push;
  logic [15:0] pend_head;
  logic [16:0] limit, spa_inc, spa_skip;
  logic        room_d, room_q, room_inc, room_skip;
  logic        misaligned, range_err;
  logic        slot_d, slot_q, slot_free;
  logic [31:0] slot_addr_d, slot_addr_q;

  logic [tc_pkg::OpW-1:0]        op;
  logic                          pop_nx, push_nx;
  logic [tc_pkg::PatSpW-1:0]     sp;
  logic [tc_pkg::PatSpBaseW-1:0] sp_base;
  logic [tc_pkg::PatPadW-1:0]    pad;
  logic                          keep;

  assign op      = instr_i[tc_pkg::OpLsb +: tc_pkg::OpW];
  assign pop_nx  = instr_i[tc_pkg::PopNextLsb];
  assign push_nx = instr_i[tc_pkg::PushNextLsb];
  assign sp      = instr_i[tc_pkg::PatSpLsb +: tc_pkg::PatSpW];
  assign sp_base = instr_i[tc_pkg::PatSpBaseLsb +: tc_pkg::PatSpBaseW];
  assign pad     = instr_i[tc_pkg::PatPadLsb +: tc_pkg::PatPadW];
  assign keep    = instr_i[tc_pkg::LdKeepLsb];

  tc_agu #(.N(N)) u_agu (
    .clk_i,
    .rst_ni,
    .start_i     (agu_start),
    .instr_i,
    .next_i      (agu_next),
    .skip_i      (agu_skip),
    .valid_o     (agu_valid),
    .addr_o      (agu_addr),
    .inb_o       (agu_inb),
    .empty_o     (agu_empty),
    .rest_o      (agu_rest),
    .misaligned_o(misaligned)
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
      tc_pkg::SpInp: limit = 17'(InpDepth);
      tc_pkg::SpWgt: limit = 17'(WgtRows);
      default:       limit = 17'(ParamWords);
    endcase
  end

  // room_q = (spa_q < limit), kept as a flag so the range check is a flop on the request path.
  assign spa_inc   = spa_q + 17'd1;
  assign room_inc  = (spa_inc < limit);
  assign spa_skip  = spa_q + {5'd0, agu_rest};
  assign room_skip = (spa_skip < limit);
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
    agu_skip = 1'b0;
    pend_push = 1'b0;
    instr_pop_o = 1'b0;
    tok_pop_next_o = 1'b0;
    tok_push_next_o = 1'b0;
    err_o = 1'b0;
    err_code_o = tc_pkg::ErrNone;
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
          state_d = (op == tc_pkg::OpLoad) ? StStart : StFinish;
        end
      end
      StStart: begin
        if (misaligned) begin
          err_o = 1'b1;
          err_code_o = tc_pkg::ErrAlign;
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
          err_code_o = tc_pkg::ErrSpRange;
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
        end else if (keep) begin
          // Padding kept: nothing written; a wholly out-of-bounds run is passed over at once.
          agu_next = 1'b1;
          agu_skip = agu_empty;
          spa_d = agu_empty ? spa_skip : spa_inc;
          room_d = agu_empty ? room_skip : room_inc;
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
