// Post-processing engine (inside the store unit): turns int32 accumulator rows into int8 rows.
// Normal mode streams one row per cycle:
//   out[out_base+i][c] = clamp(RQ((acc[a+i][c] + bias0[c]) << lshift, mult0[c], shift0[c]) + zp)
// Add mode (residual add, 3 cycles per row), with parameter sets P (a), P+1 (b), P+2 (output):
//   ra = RQ((acc[a+i] + bias0) << lshift, mult0, shift0)
//   rb = RQ((acc[b+i] + bias1) << lshift, mult1, shift1)
//   out = clamp(RQ(ra + rb + bias2, mult2, shift2) + zp)
// RQ is tc_requant (TFLite double rounding), a pipeline of LaneLatency stages taking one
// operation per cycle. A parameter set is three rows of N int32: bias, multiplier, shift.
// The `single` bit (POSTPROC field single) selects single rounding (TFLite's fully connected,
// (t * mult + 2^(30+shift)) >> (31+shift)) for the normal mode; add mode ignores it.
//
// After the parameter rows are fetched (and every row range checked, error before any write),
// StRun issues accumulator reads and lane operations, and writes results as they leave the
// lane; a shift register of operation kinds (kind_q) runs beside the lane. Normal mode reads
// one row per cycle, and each row enters the lane the cycle after its read (kind W: write).
// Add mode repeats a 3-cycle pattern: read a[i], read b[i], idle; a[i] enters the lane (kind A)
// a cycle after its read, b[i] (kind B) the cycle after that. When A leaves the lane its result
// goes to ra_q; when B leaves, sum_q = ra_q + rb and the output operation (kind W, set P+2,
// no left shift) enters the lane in the next free issue slot, at the latest three cycles later,
// before the next B leaves. Writes are in row order (the lane is in order), counted by wi_q.
// Scratchpad sizes have no defaults: tc_accel passes its own, which come from hw_targets/fpga.yaml.
module tc_postproc #(
  parameter int unsigned N,         // lanes
  parameter int unsigned AccDepth,  // ACC rows
  parameter int unsigned OutDepth,  // OUT words
  parameter int unsigned ParamRows  // PARAM rows of N int32
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  input  logic                      start_i,
  // Only the POSTPROC fields are decoded; the rest of the word is reserved.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [tc_pkg::InstrW-1:0] instr_i,
  /* verilator lint_on UNUSEDSIGNAL */
  output logic                      done_o,
  output logic                      err_o,
  output logic [15:0]               acc_raddr_o,
  input  logic [32*N-1:0]           acc_rdata_i,
  output logic [15:0]               prm_raddr_o,
  input  logic [32*N-1:0]           prm_rdata_i,
  output logic                      out_we_o,
  output logic [15:0]               out_waddr_o,
  output logic [8*N-1:0]            out_wdata_o
);
  // Pipeline depth of tc_requant (operation in at cycle c, result out at cycle c + LaneLatency).
  localparam int unsigned LaneLatency = 5;

  typedef enum logic [1:0] {StIdle, StPrm, StRun} state_e;
  state_e state_d, state_q;
  // Kind of a lane operation (and of the accumulator read feeding it).
  typedef enum logic [1:0] {KNone, KA, KB, KW} kind_e;

  // The instruction's fields, registered when it starts. The store queue keeps the word at its
  // head until the instruction completes, and nothing reads a field in the start cycle itself, so
  // the copies are cycle-identical; they keep the queue head's long route off the lanes' last
  // stage (zero point, clamp bounds) and off the range check and address adders.
  logic                         add_mode, single;
  logic [tc_pkg::PpAccAW-1:0]    acc_a;
  logic [tc_pkg::PpAccBW-1:0]    acc_b;
  logic [tc_pkg::PpOutBaseW-1:0] out_base;
  logic [tc_pkg::PpRowsW-1:0]    rows;
  logic [tc_pkg::PpPsetW-1:0]    pset;
  logic [tc_pkg::PpZpW-1:0]      zp;
  logic [tc_pkg::PpLoW-1:0]      lo;
  logic [tc_pkg::PpHiW-1:0]      hi;
  logic [tc_pkg::PpLshiftW-1:0]  lshift;
  logic                          fields_cap;

  always_ff @(posedge clk_i) begin
    if (fields_cap) begin
      add_mode <= instr_i[tc_pkg::PpAddLsb];
      // Add mode always rounds twice.
      single   <= instr_i[tc_pkg::PpSingleLsb] && !instr_i[tc_pkg::PpAddLsb];
      acc_a    <= instr_i[tc_pkg::PpAccALsb +: tc_pkg::PpAccAW];
      acc_b    <= instr_i[tc_pkg::PpAccBLsb +: tc_pkg::PpAccBW];
      out_base <= instr_i[tc_pkg::PpOutBaseLsb +: tc_pkg::PpOutBaseW];
      rows     <= instr_i[tc_pkg::PpRowsLsb +: tc_pkg::PpRowsW];
      pset     <= instr_i[tc_pkg::PpPsetLsb +: tc_pkg::PpPsetW];
      zp       <= instr_i[tc_pkg::PpZpLsb +: tc_pkg::PpZpW];
      lo       <= instr_i[tc_pkg::PpLoLsb +: tc_pkg::PpLoW];
      hi       <= instr_i[tc_pkg::PpHiLsb +: tc_pkg::PpHiW];
      lshift   <= instr_i[tc_pkg::PpLshiftLsb +: tc_pkg::PpLshiftW];
    end
  end

  logic [3:0]  k_d, k_q;           // parameter row being fetched
  logic [15:0] rd_d, rd_q;         // rows whose (last) accumulator read has been issued
  logic [15:0] wi_d, wi_q;         // rows written
  logic [1:0]  rp_d, rp_q;         // add mode: position in the 3-cycle read pattern
  kind_e       rdk_d, rdk_q;       // kind of the read issued last cycle (data on acc_rdata_i)
  kind_e       kind_d [LaneLatency];
  kind_e       kind_q [LaneLatency];
  kind_e       iss_kind, ex_kind;
  logic        sumv_d, sumv_q;     // sum_q waits for its output operation
  logic [32*N-1:0] prm_q [0:8];
  logic        prm_cap;
  logic [3:0]  prm_idx;
  logic [32*N-1:0] ra_d, ra_q, sum_d, sum_q;
  logic [1:0]  set;
  logic [32*N-1:0] lane_in, lane_r32;
  logic [8*N-1:0]  lane_q8;
  logic [4:0]  lane_ls;
  logic [3:0]  nrows;
  logic [16:0] prm_base, prm_last;
  logic [16:0] a_end, b_end, w_end;
  logic        range_err, range_err_q, reading;
  logic [3:0]  row_bias, row_mult, row_shift;

  assign nrows = add_mode ? 4'd9 : 4'd3;
  assign prm_base = {5'd0, pset} + {4'd0, pset, 1'b0};
  assign prm_last = prm_base + {13'd0, nrows} - 17'd1;
  assign a_end = {1'b0, acc_a} + {1'b0, rows};
  assign b_end = {1'b0, acc_b} + {1'b0, rows};
  assign w_end = {1'b0, out_base} + {1'b0, rows};
  // Checked before any row is read or written. Registered: the check is a chain of adds and
  // compares that would otherwise gate the first accumulator read. The fields settle in StPrm's
  // first cycle, so range_err_q is valid from its second one (k_q == 1).
  assign range_err = (prm_last >= 17'(ParamRows)) ||
                     ((rows != '0) && (a_end > 17'(AccDepth) || w_end > 17'(OutDepth) ||
                                       (add_mode && b_end > 17'(AccDepth))));

  // Rows of parameter set `set` in prm_q (3*set, 3*set+1, 3*set+2) as a constant table: the
  // product written out would be a 32-bit multiply on the requantization path. set is 0..2 only.
  always_comb begin
    unique case (set)
      2'd1:    begin row_bias = 4'd3; row_mult = 4'd4; row_shift = 4'd5; end
      2'd2:    begin row_bias = 4'd6; row_mult = 4'd7; row_shift = 4'd8; end
      default: begin row_bias = 4'd0; row_mult = 4'd1; row_shift = 4'd2; end
    endcase
  end

  for (genvar c = 0; c < N; c++) begin : g_lane
    tc_requant u_rq (
      .clk_i,
      .acc_i   (lane_in[c*32 +: 32]),
      .bias_i  (prm_q[row_bias][c*32 +: 32]),
      .lshift_i(lane_ls),
      .mult_i  (prm_q[row_mult][c*32 +: 32]),
      .shift_i (prm_q[row_shift][c*32 +: 5]),
      .single_i(single),
      .zp_i    (zp),
      .lo_i    (lo),
      .hi_i    (hi),
      .r32_o   (lane_r32[c*32 +: 32]),
      .q8_o    (lane_q8[c*8 +: 8])
    );
  end

  // Lane issue: the row read last cycle, else a waiting output operation (add mode).
  always_comb begin
    iss_kind = KNone;
    set = 2'd0;
    lane_ls = lshift;
    lane_in = acc_rdata_i;
    if (state_q == StRun) begin
      if (rdk_q != KNone) begin
        iss_kind = rdk_q;
        set = (rdk_q == KB) ? 2'd1 : 2'd0;
      end else if (sumv_q) begin
        iss_kind = KW;
        set = 2'd2;
        lane_ls = 5'd0;
        lane_in = sum_q;
      end
    end
  end

  assign ex_kind = kind_q[LaneLatency-1];

  always_comb begin
    kind_d[0] = iss_kind;
    for (int j = 1; j < LaneLatency; j++) begin
      kind_d[j] = kind_q[j-1];
    end
  end

  always_comb begin
    state_d = state_q;
    k_d = k_q;
    rd_d = rd_q;
    wi_d = wi_q;
    rp_d = rp_q;
    rdk_d = KNone;
    ra_d = ra_q;
    sum_d = sum_q;
    sumv_d = sumv_q;
    done_o = 1'b0;
    err_o = 1'b0;
    prm_cap = 1'b0;
    prm_idx = k_q - 4'd1;
    prm_raddr_o = prm_base[15:0] + {12'd0, k_q};
    acc_raddr_o = acc_a + rd_q;
    out_we_o = 1'b0;
    out_waddr_o = out_base + wi_q;
    out_wdata_o = lane_q8;
    reading = 1'b0;
    fields_cap = 1'b0;
    unique case (state_q)
      StIdle: begin
        fields_cap = start_i;
        if (start_i) begin
          k_d = '0;
          rd_d = '0;
          wi_d = '0;
          rp_d = '0;
          state_d = StPrm;
        end
      end
      StPrm: begin
        if (k_q != '0 && range_err_q) begin
          err_o = 1'b1;
        end else begin
          prm_cap = (k_q != '0);
          k_d = k_q + 4'd1;
          if (k_q == nrows) begin
            state_d = (rows == '0) ? StIdle : StRun;
            done_o = (rows == '0);
            reading = (rows != '0);  // the first read overlaps the last parameter capture
          end
        end
      end
      StRun: begin
        reading = 1'b1;
        if (ex_kind == KA) begin
          ra_d = lane_r32;
        end
        if (iss_kind == KW && rdk_q == KNone) begin
          sumv_d = 1'b0;
        end
        if (ex_kind == KB) begin
          for (int c = 0; c < N; c++) begin
            sum_d[c*32 +: 32] = ra_q[c*32 +: 32] + lane_r32[c*32 +: 32];
          end
          sumv_d = 1'b1;
        end
        if (ex_kind == KW) begin
          out_we_o = 1'b1;
          wi_d = wi_q + 16'd1;
          if (wi_q + 16'd1 == rows) begin
            state_d = StIdle;
            done_o = 1'b1;
          end
        end
      end
      default: state_d = StIdle;
    endcase

    // Accumulator reads: normal mode one row per cycle, add mode a[i], b[i], idle.
    if (reading && rd_q != rows) begin
      if (!add_mode) begin
        rdk_d = KW;
        rd_d = rd_q + 16'd1;
      end else begin
        rp_d = (rp_q == 2'd2) ? 2'd0 : rp_q + 2'd1;
        if (rp_q == 2'd0) begin
          rdk_d = KA;
        end else if (rp_q == 2'd1) begin
          rdk_d = KB;
          acc_raddr_o = acc_b + rd_q;
          rd_d = rd_q + 16'd1;
        end
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      k_q <= '0;
      rd_q <= '0;
      wi_q <= '0;
      rp_q <= '0;
      rdk_q <= KNone;
      sumv_q <= 1'b0;
      for (int j = 0; j < LaneLatency; j++) begin
        kind_q[j] <= KNone;
      end
    end else begin
      state_q <= state_d;
      k_q <= k_d;
      rd_q <= rd_d;
      wi_q <= wi_d;
      rp_q <= rp_d;
      rdk_q <= rdk_d;
      sumv_q <= sumv_d;
      for (int j = 0; j < LaneLatency; j++) begin
        kind_q[j] <= kind_d[j];
      end
    end
  end

  // Results of the first operation of an add-mode row, and the input of its output operation:
  // plain data, only read when the kind pipeline says it is valid.
  always_ff @(posedge clk_i) begin
    ra_q <= ra_d;
    sum_q <= sum_d;
    range_err_q <= range_err;
  end

  // Parameter registers: plain data captured from the parameter scratchpad.
  always_ff @(posedge clk_i) begin
    if (prm_cap) begin
      prm_q[prm_idx] <= prm_rdata_i;
    end
  end
endmodule
