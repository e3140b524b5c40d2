// Compute unit: executes COMPUTE (and SYNC) instructions from the compute queue.
//   for nt < NT: for kt < KT: for m < M:
//     a = inp_base + nt*inp_nt_stride + kt*M + m
//     t = wfix ? wgt_base + nt : wgt_base + nt*KT + kt          (weight tile of the pass)
//     normal: p[c] = sum_r inp[a][r] * W[t][r][c]
//     window: p[c] = sum_r V[r][c] * W[t][r][c], with r = g*wg + d (wg = 0: N, one group),
//             V[r] = inp[a + g*wstride - d] if m >= d and g < InpPorts else 0 (read port g's word d rows
//             earlier in this pass: kernel rows side by side, one INP copy per port)
//     a = acc_base + nt*M + m
//     acc[a] = (init && kt == 0) ? p : (max ? max(acc[a], p) : acc[a] + p)
// One input row per cycle through a 5-stage pipeline (read, operand register, multiply, add,
// accumulate/write), with no bubbles: a row read before its previous update has landed (passes of
// M < 3 rows, e.g. global pooling and dense layers with M = 1) takes the value forwarded from the
// last two writes. The operand register keeps the scratchpads' block-RAM clock-to-out out of the
// multiplier path (the accelerator's critical path without it); the array registers its products
// before its adder trees (tc_mac_array).
// Window mode only changes the array operands (per read port, a shift register of the last N-1 input
// words of the pass, cleared at each pass start); the schedule and timing are identical in both modes.
// Instructions follow each other through the pipeline: a COMPUTE leaves the queue as it issues its
// last row, and the next one issues its first row two cycles later (one idle cycle between them, as
// rtl_sim/ISA.md and tests/rtl/test_latency.py say). What the later stages need of it (window
// mode, group width, max) travels with each row, and its tokens are pushed as its last row's
// accumulator write lands (stage w1). A SYNC (or a COMPUTE without rows) waits for the pipeline to
// empty, so its tokens follow every earlier push.
// Scratchpad sizes have no defaults: tc_accel passes its own, which come from hw_targets/fpga.yaml.
module tc_compute #(
  parameter int unsigned N,         // array size
  parameter int unsigned InpDepth,  // INP words
  parameter int unsigned WgtTiles,  // WGT tiles
  parameter int unsigned AccDepth,  // ACC rows
  parameter int unsigned InpPorts   // INP read ports (window-mode groups)
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  // Only this queue's fields are decoded; the rest of the word is reserved.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [tc_pkg::InstrW-1:0] instr_i,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic                      instr_valid_i,
  output logic                      instr_pop_o,
  // dependency tokens (prev = load, next = store)
  input  logic                      tok_prev_i,
  input  logic                      tok_next_i,
  output logic                      tok_pop_prev_o,
  output logic                      tok_pop_next_o,
  output logic                      tok_push_prev_o,
  output logic                      tok_push_next_o,
  // scratchpads
  output logic [16*InpPorts-1:0]    inp_raddr_o,
  input  logic [8*N*InpPorts-1:0]   inp_rdata_i,
  output logic [15:0]               wgt_raddr_o,
  input  logic [8*N*N-1:0]          wgt_rdata_i,
  output logic [15:0]               acc_raddr_o,
  input  logic [32*N-1:0]           acc_rdata_i,
  output logic                      acc_we_o,
  output logic [15:0]               acc_waddr_o,
  output logic [32*N-1:0]           acc_wdata_o,
  // status
  output logic                      busy_o,
  output logic                      mac_o,
  output logic                      err_o,
  output logic [tc_pkg::ErrW-1:0]   err_code_o
);
  typedef enum logic [1:0] {StIdle, StRun, StDrain, StFinish} state_e;
  state_e state_d, state_q;

  logic [tc_pkg::OpW-1:0]             op;
  logic                               pop_pv, pop_nx, push_pv, push_nx, init, is_max, win, wfix;
  logic [tc_pkg::CmpInpBaseW-1:0]     inp_base;
  logic [tc_pkg::CmpWgtBaseW-1:0]     wgt_base;
  logic [tc_pkg::CmpAccBaseW-1:0]     acc_base;
  logic [tc_pkg::CmpMW-1:0]           m_cnt;
  logic [tc_pkg::CmpKtW-1:0]          kt_cnt;
  logic [tc_pkg::CmpNtW-1:0]          nt_cnt;
  logic [tc_pkg::CmpInpNtStrideW-1:0] inp_nts;
  logic [tc_pkg::CmpWgW-1:0]          wg;
  logic [tc_pkg::CmpWstrideW-1:0]     wstride;

  assign op       = instr_i[tc_pkg::OpLsb +: tc_pkg::OpW];
  assign pop_pv   = instr_i[tc_pkg::PopPrevLsb];
  assign pop_nx   = instr_i[tc_pkg::PopNextLsb];
  assign push_pv  = instr_i[tc_pkg::PushPrevLsb];
  assign push_nx  = instr_i[tc_pkg::PushNextLsb];
  assign init     = instr_i[tc_pkg::CmpInitLsb];
  assign is_max   = instr_i[tc_pkg::CmpMaxLsb];
  assign win      = instr_i[tc_pkg::CmpWinLsb];
  assign wfix     = instr_i[tc_pkg::CmpWfixLsb];
  assign inp_base = instr_i[tc_pkg::CmpInpBaseLsb +: tc_pkg::CmpInpBaseW];
  assign wgt_base = instr_i[tc_pkg::CmpWgtBaseLsb +: tc_pkg::CmpWgtBaseW];
  assign acc_base = instr_i[tc_pkg::CmpAccBaseLsb +: tc_pkg::CmpAccBaseW];
  assign m_cnt    = instr_i[tc_pkg::CmpMLsb +: tc_pkg::CmpMW];
  assign kt_cnt   = instr_i[tc_pkg::CmpKtLsb +: tc_pkg::CmpKtW];
  assign nt_cnt   = instr_i[tc_pkg::CmpNtLsb +: tc_pkg::CmpNtW];
  assign inp_nts  = instr_i[tc_pkg::CmpInpNtStrideLsb +: tc_pkg::CmpInpNtStrideW];
  assign wg       = instr_i[tc_pkg::CmpWgLsb +: tc_pkg::CmpWgW];
  assign wstride  = instr_i[tc_pkg::CmpWstrideLsb +: tc_pkg::CmpWstrideW];

  logic [15:0] m_d, m_q;
  logic [11:0] kt_d, kt_q, nt_d, nt_q;
  logic [16:0] ia_d, ia_q, ipass_d, ipass_q, int_d, int_q;
  logic [16:0] wa_d, wa_q, aa_d, aa_q, ant_d, ant_q;
  logic        issue, range_err, first;
  logic        s1_valid_q, s1_first_q, s2_valid_q, s2_first_q, s3_valid_q, s3_first_q;
  logic        s4_valid_q, s4_first_q;
  // Per row: window mode and group width (stage s1), max (carried to s4), and the tokens its
  // instruction pushes when this is its last row ({push_next, push_prev}, carried to w1).
  logic        s1_win_q, s1_max_q, s2_max_q, s3_max_q, s4_max_q;
  logic [N:1]  s1_wg_sel_q;
  logic [1:0]  push, s1_push_q, s2_push_q, s3_push_q, s4_push_q, w1_push_q;
  logic [15:0] s1_addr_q, s2_addr_q, s3_addr_q, s4_addr_q;
  logic [32*N-1:0] s4_acc_q, dot, acc_old;
  // Operand register: the array's inputs of the row in stage s2 (datapath only, s2_valid_q says
  // whether they are live).
  logic [8*N*N-1:0] x_op_q, w_op_q;
  // The two most recent accumulator writes: the RAM is read-first and a row is read (in stage s2,
  // so its old value meets the array's result in s4) two cycles before its update lands, so a row
  // issued right after the same row (passes of m < 3 rows) takes its old value from here instead.
  // The address compares are made a stage early (s3 against the writes that will be w1 and w2 when
  // it reaches s4) and registered: the select then leaves a flip-flop, not a 16-bit compare, which
  // took the compare, its fan-out to every lane and the accumulate add in one cycle.
  logic            w1_valid_q, fwd1_q, fwd2_q;
  logic [15:0]     w1_addr_q;
  logic [32*N-1:0] w1_data_q, w2_data_q;
  // Window mode: s1_pstart_q marks the first row of a pass (its history reads as zero); word d of
  // port p's hist_q holds the word port p read d+1 rows earlier in the current pass, word d of its
  // vwin the word read d rows earlier. wg_sel[g] says the groups are g rows wide (wg 0 or past N:
  // N). (Flat vectors: yosys has no multi-dimensional packed arrays.) The deep words of ports past
  // the first serve no group width and are left for synthesis to remove.
  logic                          s1_pstart_q;
  logic [8*N*N-1:0]              x_op;
  logic [N:1]                    wg_sel;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [8*N*N*InpPorts-1:0]     vwin;
  logic [8*N*(N-1)*InpPorts-1:0] hist_d, hist_q;
  /* verilator lint_on UNUSEDSIGNAL */

  always_comb begin
    for (int g = 1; g <= N; g++) begin
      wg_sel[g] = (32'(wg) == g) || (g == N && (wg == '0 || 32'(wg) > N));
    end
  end

  // Operand matrix of the array (byte r*N + c = operand of multiplier row r, column c). The INP
  // words read for this row arrive in stage s1, together with its weight tile.
  always_comb begin
    for (int p = 0; p < InpPorts; p++) begin
      vwin[p*8*N*N +: 8*N] = inp_rdata_i[p*8*N +: 8*N];
      for (int d = 1; d < N; d++) begin
        vwin[(p*N+d)*8*N +: 8*N] = s1_pstart_q ? '0 : hist_q[(p*(N-1)+d-1)*8*N +: 8*N];
      end
      // shift on valid rows only (passes are issued back to back, gaps come only between passes)
      hist_d[p*8*N*(N-1) +: 8*N*(N-1)] = s1_valid_q ? vwin[p*8*N*N +: 8*N*(N-1)]
                                                    : hist_q[p*8*N*(N-1) +: 8*N*(N-1)];
    end
    x_op = '0;
    for (int r = 0; r < N; r++) begin
      if (!s1_win_q) begin
        x_op[r*8*N +: 8*N] = {N{inp_rdata_i[r*8 +: 8]}};
      end else begin
        for (int g = 1; g <= N; g++) begin
          if (s1_wg_sel_q[g] && r / g < InpPorts) begin
            x_op[r*8*N +: 8*N] = vwin[((r/g)*N + r%g)*8*N +: 8*N];
          end
        end
      end
    end
  end

  always_ff @(posedge clk_i) begin
    x_op_q <= x_op;
    w_op_q <= wgt_rdata_i;
  end

  tc_mac_array #(.N(N)) u_array (
    .clk_i,
    .x_i  (x_op_q),
    .w_i  (w_op_q),
    .dot_o(dot)
  );

  // Port p's address in window mode: the pass's plus p strides (port 0 is the pass's own). A port
  // no row of the group width reads is not range checked.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [19*InpPorts-1:0] port_a;  // wide enough for InpPorts - 1 full strides past a 17-bit base
  /* verilator lint_on UNUSEDSIGNAL */
  logic                   port_err;
  always_comb begin
    port_err = 1'b0;
    for (int p = 0; p < InpPorts; p++) begin
      port_a[p*19 +: 19] = 19'(ia_q) + 19'(p) * 19'(wstride);
      for (int g = 1; g <= N; g++) begin
        if (p > 0 && win && wg_sel[g] && p * g < N && port_a[p*19 +: 19] >= 19'(InpDepth)) begin
          port_err = 1'b1;
        end
      end
    end
  end

  assign range_err = (ia_q >= 17'(InpDepth)) || (wa_q >= 17'(WgtTiles)) ||
                     (aa_q >= 17'(AccDepth)) || port_err;
  assign first = init && (kt_q == '0);

  always_comb begin
    state_d = state_q;
    m_d = m_q;
    kt_d = kt_q;
    nt_d = nt_q;
    ia_d = ia_q;
    ipass_d = ipass_q;
    int_d = int_q;
    wa_d = wa_q;
    aa_d = aa_q;
    ant_d = ant_q;
    issue = 1'b0;
    push = 2'b00;
    instr_pop_o = 1'b0;
    tok_pop_prev_o = 1'b0;
    tok_pop_next_o = 1'b0;
    tok_push_prev_o = 1'b0;
    tok_push_next_o = 1'b0;
    err_o = 1'b0;
    err_code_o = tc_pkg::ErrNone;
    unique case (state_q)
      StIdle: begin
        if (instr_valid_i && (!pop_pv || tok_prev_i) && (!pop_nx || tok_next_i)) begin
          tok_pop_prev_o = pop_pv;
          tok_pop_next_o = pop_nx;
          m_d = '0;
          kt_d = '0;
          nt_d = '0;
          ia_d = {1'b0, inp_base};
          ipass_d = {1'b0, inp_base};
          int_d = {1'b0, inp_base};
          wa_d = {1'b0, wgt_base};
          aa_d = {1'b0, acc_base};
          ant_d = {1'b0, acc_base};
          if (op == tc_pkg::OpCompute && m_cnt != '0 && kt_cnt != '0 && nt_cnt != '0) begin
            state_d = StRun;
          end else begin
            state_d = StDrain;
          end
        end
      end
      StRun: begin
        if (range_err) begin
          err_o = 1'b1;
          err_code_o = tc_pkg::ErrSpRange;
        end else begin
          issue = 1'b1;
          if (m_q + 16'd1 < m_cnt) begin
            m_d = m_q + 16'd1;
            ia_d = ia_q + 17'd1;
            aa_d = aa_q + 17'd1;
          end else begin
            m_d = '0;
            wa_d = wa_q + 17'd1;
            if (kt_q + 12'd1 < kt_cnt) begin
              if (wfix) begin
                wa_d = wa_q;  // one tile for every k pass of this n tile
              end
              kt_d = kt_q + 12'd1;
              ipass_d = ipass_q + {1'b0, m_cnt};
              ia_d = ipass_q + {1'b0, m_cnt};
              aa_d = ant_q;
            end else if (nt_q + 12'd1 < nt_cnt) begin
              kt_d = '0;
              nt_d = nt_q + 12'd1;
              int_d = int_q + {1'b0, inp_nts};
              ipass_d = int_q + {1'b0, inp_nts};
              ia_d = int_q + {1'b0, inp_nts};
              ant_d = ant_q + {1'b0, m_cnt};
              aa_d = ant_q + {1'b0, m_cnt};
            end else begin
              // Last row: the instruction leaves, its tokens go with the row.
              push = {push_nx, push_pv};
              instr_pop_o = 1'b1;
              state_d = StIdle;
            end
          end
        end
      end
      StDrain: begin
        // Wait until every earlier accumulator write has landed and its tokens are pushed.
        if (!s1_valid_q && !s2_valid_q && !s3_valid_q && !s4_valid_q && w1_push_q == 2'b00) begin
          state_d = StFinish;
        end
      end
      StFinish: begin
        tok_push_prev_o = push_pv;
        tok_push_next_o = push_nx;
        instr_pop_o = 1'b1;
        state_d = StIdle;
      end
      default: state_d = StIdle;
    endcase
    if (w1_push_q[0]) tok_push_prev_o = 1'b1;
    if (w1_push_q[1]) tok_push_next_o = 1'b1;
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      m_q <= '0;
      kt_q <= '0;
      nt_q <= '0;
      ia_q <= '0;
      ipass_q <= '0;
      int_q <= '0;
      wa_q <= '0;
      aa_q <= '0;
      ant_q <= '0;
      w1_valid_q <= 1'b0;
      fwd1_q <= 1'b0;
      fwd2_q <= 1'b0;
      s1_valid_q <= 1'b0;
      s1_first_q <= 1'b0;
      s1_pstart_q <= 1'b0;
      s1_addr_q <= '0;
      hist_q <= '0;
      s2_valid_q <= 1'b0;
      s2_first_q <= 1'b0;
      s2_addr_q <= '0;
      s3_valid_q <= 1'b0;
      s3_first_q <= 1'b0;
      s3_addr_q <= '0;
      s4_valid_q <= 1'b0;
      s4_first_q <= 1'b0;
      s4_addr_q <= '0;
      s4_acc_q <= '0;
      s1_push_q <= '0;
      s2_push_q <= '0;
      s3_push_q <= '0;
      s4_push_q <= '0;
      w1_push_q <= '0;
    end else begin
      state_q <= state_d;
      m_q <= m_d;
      kt_q <= kt_d;
      nt_q <= nt_d;
      ia_q <= ia_d;
      ipass_q <= ipass_d;
      int_q <= int_d;
      wa_q <= wa_d;
      aa_q <= aa_d;
      ant_q <= ant_d;
      w1_valid_q <= s4_valid_q;
      fwd1_q <= s4_valid_q && (s4_addr_q == s3_addr_q);
      fwd2_q <= w1_valid_q && (w1_addr_q == s3_addr_q);
      s1_valid_q <= issue;
      s1_first_q <= first;
      s1_pstart_q <= (m_q == '0);
      s1_addr_q <= aa_q[15:0];
      hist_q <= hist_d;
      s2_valid_q <= s1_valid_q;
      s2_first_q <= s1_first_q;
      s2_addr_q <= s1_addr_q;
      s3_valid_q <= s2_valid_q;
      s3_first_q <= s2_first_q;
      s3_addr_q <= s2_addr_q;
      s4_valid_q <= s3_valid_q;
      s4_first_q <= s3_first_q;
      s4_addr_q <= s3_addr_q;
      s4_acc_q <= acc_rdata_i;
      s1_push_q <= push;
      s2_push_q <= s1_push_q;
      s3_push_q <= s2_push_q;
      s4_push_q <= s3_push_q;
      w1_push_q <= s4_push_q;
    end
  end

  // Per-row instruction fields: datapath only, read while the row's valid bit is set.
  always_ff @(posedge clk_i) begin
    s1_win_q <= win;
    s1_wg_sel_q <= wg_sel;
    s1_max_q <= is_max;
    s2_max_q <= s1_max_q;
    s3_max_q <= s2_max_q;
    s4_max_q <= s3_max_q;
  end

  // Forwarding registers: datapath only, validity is in w1_valid_q and fwd1_q/fwd2_q.
  always_ff @(posedge clk_i) begin
    w1_addr_q <= s4_addr_q;
    w1_data_q <= acc_wdata_o;
    w2_data_q <= w1_data_q;
  end

  always_comb begin
    if (fwd1_q) begin
      acc_old = w1_data_q;
    end else if (fwd2_q) begin
      acc_old = w2_data_q;
    end else begin
      acc_old = s4_acc_q;
    end
  end

  // Accumulate stage: sum, or max (pooling), or overwrite on the first pass of an init compute.
  always_comb begin
    for (int c = 0; c < N; c++) begin
      logic [31:0] old, p;
      old = acc_old[c*32 +: 32];
      p = dot[c*32 +: 32];
      if (s4_first_q) begin
        acc_wdata_o[c*32 +: 32] = p;
      end else if (s4_max_q) begin
        acc_wdata_o[c*32 +: 32] = ($signed(p) > $signed(old)) ? p : old;
      end else begin
        acc_wdata_o[c*32 +: 32] = old + p;
      end
    end
  end

  assign acc_we_o = s4_valid_q;
  assign acc_waddr_o = s4_addr_q;
  for (genvar p = 0; p < InpPorts; p++) begin : g_port
    assign inp_raddr_o[p*16 +: 16] = port_a[p*19 +: 16];
  end
  assign wgt_raddr_o = wa_q[15:0];
  assign acc_raddr_o = s2_addr_q;
  assign busy_o = (state_q != StIdle) || s1_valid_q || s2_valid_q || s3_valid_q || s4_valid_q ||
                  (w1_push_q != 2'b00);
  assign mac_o = issue;
endmodule
