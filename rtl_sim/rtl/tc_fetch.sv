// Instruction fetch, decode and issue. Fetches 256-bit instructions (32/N bus beats each) from
// the program in external memory, checks them, and pushes each one into the queue of the unit
// that executes it (0 load, 1 compute, 2 store), in program order. Units then run in parallel,
// synchronised only by the dependency tokens carried in the instructions.
module tc_fetch #(
  parameter int unsigned N  // bus bytes (no default: the configuration comes from hw_targets/fpga.yaml)
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  input  logic                      start_i,
  input  logic [31:0]               prog_base_i,
  // memory requester (reads only)
  output logic                      req_valid_o,
  input  logic                      req_ready_i,
  output logic [31:0]               req_addr_o,
  input  logic                      rsp_valid_i,
  input  logic [8*N-1:0]            rsp_rdata_i,
  // dispatch
  output logic [2:0]                q_push_o,
  input  logic [2:0]                q_full_i,
  output logic [tc_pkg::InstrW-1:0] instr_o,
  // status
  output logic                      halted_o,
  output logic [31:0]               pc_o,
  output logic                      err_o,
  output logic [tc_pkg::ErrW-1:0]   err_code_o
);
  localparam int unsigned LogN = $clog2(N);
  localparam int unsigned Beats = tc_pkg::InstrW / (8 * N);

  typedef enum logic [1:0] {StIdle, StFetch, StDispatch, StHalt} state_e;
  state_e state_d, state_q;

  logic [31:0]                   pc_d, pc_q;
  // The program base's alignment, checked once at start (pc_q only ever moves by whole instructions), so the
  // fetch request comes from flops: it feeds the memory arbiter's grant.
  logic                          mis_d, mis_q, base_mis;
  logic [3:0]                    nreq_d, nreq_q, nrsp_d, nrsp_q;
  logic [tc_pkg::InstrW-1:0]     ir_d, ir_q;
  logic [tc_pkg::SyncQueueW-1:0] queue, sync_queue;
  logic                          legal;
  logic [tc_pkg::ErrW-1:0]       dec_code;
  logic [tc_pkg::OpW-1:0]        op;
  logic [tc_pkg::PatSpW-1:0]     sp;
  logic                          pop_prev, pop_next, push_prev, push_next;

  assign op         = ir_q[tc_pkg::OpLsb +: tc_pkg::OpW];
  assign sp         = ir_q[tc_pkg::PatSpLsb +: tc_pkg::PatSpW];
  assign sync_queue = ir_q[tc_pkg::SyncQueueLsb +: tc_pkg::SyncQueueW];
  assign pop_prev   = ir_q[tc_pkg::PopPrevLsb];
  assign pop_next   = ir_q[tc_pkg::PopNextLsb];
  assign push_prev  = ir_q[tc_pkg::PushPrevLsb];
  assign push_next  = ir_q[tc_pkg::PushNextLsb];

  // Decode: which queue, and is the word legal? Load has no "prev" neighbour and store no "next";
  // LOAD names one of three scratchpads, STORE only OUT (0), SYNC one of three queues.
  always_comb begin
    queue = tc_pkg::QueueLoad;
    legal = 1'b1;
    dec_code = tc_pkg::ErrField;
    unique case (op)
      tc_pkg::OpLoad:     queue = tc_pkg::QueueLoad;
      tc_pkg::OpCompute:  queue = tc_pkg::QueueCompute;
      tc_pkg::OpPostproc,
      tc_pkg::OpStore:    queue = tc_pkg::QueueStore;
      tc_pkg::OpSync:     queue = sync_queue;
      tc_pkg::OpDone:     queue = tc_pkg::QueueLoad;
      default: begin
        legal = 1'b0;
        dec_code = tc_pkg::ErrOpcode;
      end
    endcase
    if (legal && op != tc_pkg::OpDone) begin
      if ((op == tc_pkg::OpLoad && sp > tc_pkg::SpParam) || (op == tc_pkg::OpStore && sp != '0) ||
          (op == tc_pkg::OpSync && sync_queue > tc_pkg::QueueStore) ||
          (queue == tc_pkg::QueueLoad && (pop_prev || push_prev)) ||
          (queue == tc_pkg::QueueStore && (pop_next || push_next))) begin
        legal = 1'b0;
      end
    end
  end

  assign base_mis = LogN > 0 && prog_base_i[LogN-1:0] != '0;

  always_comb begin
    state_d = state_q;
    pc_d = pc_q;
    mis_d = mis_q;
    nreq_d = nreq_q;
    nrsp_d = nrsp_q;
    ir_d = ir_q;
    req_valid_o = 1'b0;
    q_push_o = 3'b000;
    err_o = 1'b0;
    unique case (state_q)
      StIdle: begin
        if (start_i) begin
          pc_d = prog_base_i;
          mis_d = base_mis;
          nreq_d = '0;
          nrsp_d = '0;
          state_d = StFetch;
        end
      end
      StFetch: begin
        if (mis_q) begin
          err_o = 1'b1;
        end else begin
          req_valid_o = (nreq_q != 4'(Beats));
          if (req_valid_o && req_ready_i) begin
            nreq_d = nreq_q + 4'd1;
          end
          if (rsp_valid_i) begin
            ir_d[nrsp_q*(8*N) +: 8*N] = rsp_rdata_i;
            nrsp_d = nrsp_q + 4'd1;
            if (nrsp_q + 4'd1 == 4'(Beats)) begin
              state_d = StDispatch;
            end
          end
        end
      end
      StDispatch: begin
        if (!legal) begin
          err_o = 1'b1;
        end else if (op == tc_pkg::OpDone) begin
          state_d = StHalt;
        end else if (!q_full_i[queue]) begin
          q_push_o[queue] = 1'b1;
          pc_d = pc_q + 32'(tc_pkg::InstrW / 8);
          nreq_d = '0;
          nrsp_d = '0;
          state_d = StFetch;
        end
      end
      StHalt: begin
        if (start_i) begin
          pc_d = prog_base_i;
          mis_d = base_mis;
          nreq_d = '0;
          nrsp_d = '0;
          state_d = StFetch;
        end
      end
      default: state_d = StIdle;
    endcase
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      pc_q <= '0;
      mis_q <= 1'b0;
      nreq_q <= '0;
      nrsp_q <= '0;
      ir_q <= '0;
    end else begin
      state_q <= state_d;
      pc_q <= pc_d;
      mis_q <= mis_d;
      nreq_q <= nreq_d;
      nrsp_q <= nrsp_d;
      ir_q <= ir_d;
    end
  end

  assign req_addr_o = (pc_q >> LogN) + {28'd0, nreq_q};
  assign instr_o = ir_q;
  assign err_code_o = (state_q == StFetch) ? tc_pkg::ErrAlign : dec_code;
  assign halted_o = (state_q == StHalt);
  assign pc_o = pc_q;
endmodule
