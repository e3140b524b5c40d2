// Store unit: executes POSTPROC, STORE (and SYNC) instructions from the store queue, in order.
// POSTPROC runs tc_postproc (accumulators -> int8 output scratchpad); STORE walks the tc_agu
// pattern over the output scratchpad and writes every in-bounds element to memory (out-of-bounds
// elements are skipped). Writes are posted: the instruction completes when the last write has been
// accepted, and memory is in order, so a later load always sees the data.
//
// A STORE runs in its own engine: it leaves the queue as it starts (its pattern copied into st_q),
// so the POSTPROC behind it may run beside it, post-processing the next tile while this one goes
// out. That POSTPROC starts only if it writes none of the OUT words the STORE has still to read
// ([spa_q, sp_end_q); sp_end_q = sp_base + n0*n1*n2, ready two cycles after the STORE starts), so
// the result is the in-order one. A STORE starts once the engine is free, a SYNC once it is idle;
// tokens a POSTPROC or SYNC pushes in the cycle the engine pushes its own wait a cycle.
//
// The engine streams one element per cycle. The AGU element at the head (scratchpad word spa_q) is
// range checked, then either skipped (out of bounds) or issued: its OUT read starts and its memory
// address moves into a one-entry pending slot. The next cycle the read data arrives from the RAM
// and the slot drives the write request; if memory does not take it that cycle, the data is parked
// in a holding register (the RAM output moves on) and the request is repeated from there. A new
// element is issued only when the slot is free or is being emptied this cycle, so at most one
// write is ever pending and words can be neither lost, duplicated nor reordered. A scratchpad
// address out of range raises error 2 only once every earlier write has been accepted.
// Scratchpad sizes have no defaults: tc_accel passes its own, which come from hw_targets/fpga.yaml.
module tc_store #(
  parameter int unsigned N,         // bus bytes and lanes
  parameter int unsigned AccDepth,  // ACC rows
  parameter int unsigned OutDepth,  // OUT words
  parameter int unsigned ParamRows  // PARAM rows of N int32
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  // Only this queue's fields are decoded; the rest of the word is reserved.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [tc_pkg::InstrW-1:0] instr_i,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic                      instr_valid_i,
  output logic                      instr_pop_o,
  // dependency tokens (prev = compute)
  input  logic                      tok_prev_i,
  output logic                      tok_pop_prev_o,
  output logic                      tok_push_prev_o,
  // memory requester (writes only)
  output logic                      req_valid_o,
  input  logic                      req_ready_i,
  output logic [31:0]               req_addr_o,
  output logic [8*N-1:0]            req_wdata_o,
  // scratchpads
  output logic [15:0]               acc_raddr_o,
  input  logic [32*N-1:0]           acc_rdata_i,
  output logic [15:0]               prm_raddr_o,
  input  logic [32*N-1:0]           prm_rdata_i,
  output logic                      out_we_o,
  output logic [15:0]               out_waddr_o,
  output logic [8*N-1:0]            out_wdata_o,
  output logic [15:0]               out_raddr_o,
  input  logic [8*N-1:0]            out_rdata_i,
  // status
  output logic                      busy_o,
  output logic                      err_o,
  output logic [tc_pkg::ErrW-1:0]   err_code_o
);
  localparam int unsigned LogN = $clog2(N);

  typedef enum logic [1:0] {StIdle, StPost, StFinish} state_e;
  state_e state_d, state_q;
  typedef enum logic [1:0] {SeIdle, SeStart, SeRun} engine_e;
  engine_e eng_d, eng_q;

  logic [tc_pkg::OpW-1:0]        op;
  logic                          pop_pv, push_pv;
  logic [tc_pkg::PpOutBaseW-1:0] pp_base;
  logic [tc_pkg::PpRowsW-1:0]    pp_rows;

  assign op      = instr_i[tc_pkg::OpLsb +: tc_pkg::OpW];
  assign pop_pv  = instr_i[tc_pkg::PopPrevLsb];
  assign push_pv = instr_i[tc_pkg::PushPrevLsb];
  assign pp_base = instr_i[tc_pkg::PpOutBaseLsb +: tc_pkg::PpOutBaseW];
  assign pp_rows = instr_i[tc_pkg::PpRowsLsb +: tc_pkg::PpRowsW];

  // The running STORE: its instruction word (the AGU decodes its pattern), whether it pushes a
  // token, and the end of its OUT words (n0*n1 saturated to 16 bits: any count past the scratchpad
  // reaches its end all the same).
  /* verilator lint_off UNUSEDSIGNAL */
  logic [tc_pkg::InstrW-1:0] st_q;
  /* verilator lint_on UNUSEDSIGNAL */
  logic                      st_cap, st_push_q, end_ok_d, end_ok_q, eng_push, hazard;
  logic [23:0]               n01;
  logic [15:0]               n01_q;
  logic [27:0]               span;
  logic [16:0]               sp_end_q;

  // spa_q: OUT word of the AGU's current element. pend_q: one write is pending, to word address
  // paddr_q; its data is the RAM output (first cycle, held_q = 0) or hold_q (held_q = 1).
  logic [16:0]    spa_d, spa_q;
  logic           pend_d, pend_q, held_d, held_q;
  logic [31:0]    paddr_d, paddr_q;
  logic [8*N-1:0] hold_d, hold_q;
  logic           agu_start, agu_next, agu_valid, agu_inb;
  logic [31:0]    agu_addr;
  logic           pp_start, pp_done, pp_err, misaligned;
  logic           accept, slot_free, range_err, eng_err;
  logic [tc_pkg::ErrW-1:0] eng_code;

  // A STORE never passes over a run (skip_i tied low): the run outputs are the LOAD's.
  /* verilator lint_off UNUSEDSIGNAL */
  logic        agu_empty;
  logic [11:0] agu_rest;
  /* verilator lint_on UNUSEDSIGNAL */

  tc_agu #(.N(N)) u_agu (
    .clk_i,
    .rst_ni,
    .start_i     (agu_start),
    .instr_i     (st_q),
    .next_i      (agu_next),
    .skip_i      (1'b0),
    .valid_o     (agu_valid),
    .addr_o      (agu_addr),
    .inb_o       (agu_inb),
    .empty_o     (agu_empty),
    .rest_o      (agu_rest),
    .misaligned_o(misaligned)
  );

  tc_postproc #(
    .N(N), .AccDepth(AccDepth), .OutDepth(OutDepth), .ParamRows(ParamRows)
  ) u_pp (
    .clk_i,
    .rst_ni,
    .start_i    (pp_start),
    .instr_i,
    .done_o     (pp_done),
    .err_o      (pp_err),
    .acc_raddr_o,
    .acc_rdata_i,
    .prm_raddr_o,
    .prm_rdata_i,
    .out_we_o,
    .out_waddr_o,
    .out_wdata_o
  );

  assign n01 = st_q[tc_pkg::PatN0Lsb +: tc_pkg::PatN0W] * st_q[tc_pkg::PatN1Lsb +: tc_pkg::PatN1W];
  assign span = n01_q * st_q[tc_pkg::PatN2Lsb +: tc_pkg::PatN2W];
  // The POSTPROC at the head would write OUT words the running STORE has still to read.
  assign hazard = (eng_q != SeIdle) &&
                  (!end_ok_q || (17'(pp_base) < sp_end_q && spa_q < 17'(pp_base) + 17'(pp_rows)));

  // The pending write goes out this cycle; the slot can take a new element.
  assign accept = pend_q && req_ready_i;
  assign slot_free = !pend_q || req_ready_i;
  assign range_err = agu_valid && (spa_q >= 17'(OutDepth));

  // STORE engine.
  always_comb begin
    eng_d = eng_q;
    spa_d = spa_q;
    pend_d = pend_q;
    held_d = held_q;
    paddr_d = paddr_q;
    hold_d = hold_q;
    agu_start = 1'b0;
    agu_next = 1'b0;
    eng_push = 1'b0;
    eng_err = 1'b0;
    eng_code = tc_pkg::ErrNone;
    end_ok_d = end_ok_q;

    // Pending slot: retire on acceptance, otherwise park the RAM data once it has arrived. The
    // holding register follows the RAM output whenever nothing is parked (it is read only once
    // held_q is set), so its 8N enables do not wait for the arbiter's grant (that fan-out was the
    // accelerator's critical path after the operand register).
    if (!held_q) begin
      hold_d = out_rdata_i;
    end
    if (accept) begin
      pend_d = 1'b0;
    end else if (pend_q && !held_q) begin
      held_d = 1'b1;
    end

    unique case (eng_q)
      SeIdle: begin
        if (st_cap) begin
          end_ok_d = 1'b0;
          eng_d = SeStart;
        end
      end
      SeStart: begin
        if (misaligned) begin
          eng_err = 1'b1;
          eng_code = tc_pkg::ErrAlign;
        end else begin
          agu_start = 1'b1;
          spa_d = {1'b0, st_q[tc_pkg::PatSpBaseLsb +: tc_pkg::PatSpBaseW]};
          eng_d = SeRun;
        end
      end
      SeRun: begin
        end_ok_d = 1'b1;  // sp_end_q is written this cycle (n01_q was written in SeStart)
        if (!agu_valid) begin
          // Every element issued: complete as the last write is accepted.
          if (slot_free) begin
            eng_push = st_push_q;
            eng_d = SeIdle;
          end
        end else if (range_err) begin
          // Raised only after all earlier writes have gone out.
          if (!pend_q) begin
            eng_err = 1'b1;
            eng_code = tc_pkg::ErrSpRange;
          end
        end else if (!agu_inb) begin
          agu_next = 1'b1;
          spa_d = spa_q + 17'd1;
        end else if (slot_free) begin
          // Issue: the OUT read of spa_q starts now (out_raddr_o), the data arrives next cycle.
          agu_next = 1'b1;
          spa_d = spa_q + 17'd1;
          pend_d = 1'b1;
          held_d = 1'b0;
          paddr_d = agu_addr >> LogN;
        end
      end
      default: eng_d = SeIdle;
    endcase
  end

  // Queue head: POSTPROC and SYNC run here, a STORE is handed to the engine.
  always_comb begin
    state_d = state_q;
    st_cap = 1'b0;
    pp_start = 1'b0;
    instr_pop_o = 1'b0;
    tok_pop_prev_o = 1'b0;
    tok_push_prev_o = eng_push;
    err_o = eng_err;
    err_code_o = eng_code;

    unique case (state_q)
      StIdle: begin
        if (instr_valid_i && (!pop_pv || tok_prev_i)) begin
          if (op == tc_pkg::OpPostproc) begin
            if (!hazard) begin
              tok_pop_prev_o = pop_pv;
              pp_start = 1'b1;
              state_d = StPost;
            end
          end else if (op == tc_pkg::OpStore) begin
            if (eng_q == SeIdle) begin
              tok_pop_prev_o = pop_pv;
              st_cap = 1'b1;
              instr_pop_o = 1'b1;
            end
          end else if (eng_q == SeIdle) begin
            tok_pop_prev_o = pop_pv;
            state_d = StFinish;
          end
        end
      end
      StPost: begin
        if (pp_err) begin
          err_o = 1'b1;
          err_code_o = tc_pkg::ErrSpRange;
        end else if (pp_done) begin
          state_d = StFinish;
        end
      end
      StFinish: begin
        if (!(push_pv && eng_push)) begin
          tok_push_prev_o = eng_push || push_pv;
          instr_pop_o = 1'b1;
          state_d = StIdle;
        end
      end
      default: state_d = StIdle;
    endcase
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      eng_q <= SeIdle;
      end_ok_q <= 1'b0;
      spa_q <= '0;
      pend_q <= 1'b0;
      held_q <= 1'b0;
      paddr_q <= '0;
      hold_q <= '0;
    end else begin
      state_q <= state_d;
      eng_q <= eng_d;
      end_ok_q <= end_ok_d;
      spa_q <= spa_d;
      pend_q <= pend_d;
      held_q <= held_d;
      paddr_q <= paddr_d;
      hold_q <= hold_d;
    end
  end

  // The running STORE's copy and its OUT span: datapath only, qualified by eng_q and end_ok_q.
  always_ff @(posedge clk_i) begin
    if (st_cap) begin
      st_q <= instr_i;
      st_push_q <= push_pv;
    end
    n01_q <= (n01[23:16] != '0) ? 16'hffff : n01[15:0];
    sp_end_q <= 17'(st_q[tc_pkg::PatSpBaseLsb +: tc_pkg::PatSpBaseW]) +
                ((span[27:16] != '0) ? 17'h0ffff : 17'(span[15:0]));
  end

  assign out_raddr_o = spa_q[15:0];
  assign req_valid_o = pend_q;
  assign req_addr_o = paddr_q;
  assign req_wdata_o = held_q ? hold_q : out_rdata_i;
  assign busy_o = (state_q != StIdle) || (eng_q != SeIdle);
endmodule
