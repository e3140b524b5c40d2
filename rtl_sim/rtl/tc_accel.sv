// tinycompile int8 accelerator, top level. See rtl_sim/ISA.md for the programming model.
// Reset is synchronous and active low (rst_ni) everywhere; an error additionally holds the
// fetch, load, compute and store units (and their queues) in reset until the next start, so a
// fault can never hang the accelerator. Scratchpads are double-buffered by software: the load
// unit writes one half while the compute unit reads the other, ordered by dependency tokens.
// The array and scratchpad sizes have no defaults: they come from one place, the `accelerator:`
// section of hw_targets/fpga.yaml, through tinycompile.accel.config (which the simulation runner,
// the lint test and the synthesis script all use), so the RTL cannot drift from the compiler.
module tc_accel #(
  parameter int unsigned N,              // MAC array is N x N; bus is N bytes wide
  parameter int unsigned InpDepth,       // input scratchpad words (N int8 each)
  parameter int unsigned WgtTiles,       // weight scratchpad tiles (N x N int8 each)
  parameter int unsigned AccDepth,       // accumulator rows (N int32 each)
  parameter int unsigned OutDepth,       // output scratchpad words (N int8 each)
  parameter int unsigned ParamSets,      // post-processing parameter sets (3 rows of N int32)
  parameter int unsigned InpPorts,       // input scratchpad read ports (copies): window-mode kernel rows per pass
  parameter int unsigned QueueDepth = 8  // instructions per unit queue
) (
  input  logic           clk_i,
  input  logic           rst_ni,
  // host control / status
  input  logic           start_i,
  input  logic [31:0]    prog_base_i,
  input  logic [2:0]     csr_addr_i,
  output logic [31:0]    csr_rdata_o,
  output logic           busy_o,
  output logic           done_o,
  output logic           error_o,
  // external memory port (word addresses, N-byte words)
  output logic           mem_req_valid_o,
  input  logic           mem_req_ready_i,
  output logic           mem_req_we_o,
  output logic [31:0]    mem_req_addr_o,
  output logic [8*N-1:0] mem_req_wdata_o,
  input  logic           mem_rsp_valid_i,
  input  logic [8*N-1:0] mem_rsp_rdata_i
);
  localparam int unsigned DataW = 8 * N;
  localparam int unsigned LogN = $clog2(N);
  localparam int unsigned WgtRows = WgtTiles * N;
  localparam int unsigned ParamRows = tc_pkg::ParamRowsPerSet * ParamSets;
  localparam int unsigned InpAw = $clog2(InpDepth);
  localparam int unsigned WgtAw = $clog2(WgtTiles);
  localparam int unsigned AccAw = $clog2(AccDepth);
  localparam int unsigned OutAw = $clog2(OutDepth);
  localparam int unsigned PrmAw = $clog2(ParamRows);

  // ---------------------------------------------------------------- status and control
  logic                      busy_d, busy_q, done_d, done_q, err_d, err_q;
  logic [tc_pkg::ErrW-1:0]   code_d, code_q;
  logic [31:0]               cyc_d, cyc_q, mac_d, mac_q, lb_d, lb_q, cb_d, cb_q, sb_d, sb_q, ni_d, ni_q;
  logic [31:0]               epc_d, epc_q;
  logic                      unit_rst_n, start_ok, all_idle;
  logic                      f_err, l_err, c_err, s_err, tok_err, any_err;
  // An error is registered before it stops the accelerator (applied one cycle later): the units'
  // error conditions are long paths through the memory arbiter, and they would otherwise enable
  // every status register. fpc_q and fcode_q follow the fetch PC and the first unit's code every
  // cycle, so they hold the values of the cycle the error was seen.
  logic                      fault_q;
  logic [tc_pkg::ErrW-1:0]   fcode_d, fcode_q;
  logic [31:0]               fpc_q;
  logic [tc_pkg::ErrW-1:0]   f_code, l_code, c_code, s_code;
  logic                      f_halted, l_busy, c_busy, s_busy, c_mac, arb_idle;
  logic [31:0]               f_pc;
  logic [2:0]                q_push, q_full, q_empty, q_pop;
  logic [tc_pkg::InstrW-1:0] f_instr;
  logic [tc_pkg::InstrW-1:0] q_head [0:2];
  logic                      stamp_q, c_stamp_head, c_valid;
  logic [31:0]               stamp_addr_q, stamp_cyc_q;

  assign unit_rst_n = rst_ni && !err_q;
  // A new program may only start once every read of the previous one has returned.
  assign start_ok = start_i && arb_idle;
  assign all_idle = f_halted && (&q_empty) && !l_busy && !c_busy && !s_busy && !stamp_q;

  always_comb begin
    busy_d = busy_q;
    done_d = done_q;
    err_d = err_q;
    code_d = code_q;
    epc_d = epc_q;
    cyc_d = cyc_q;
    mac_d = mac_q;
    lb_d = lb_q;
    cb_d = cb_q;
    sb_d = sb_q;
    ni_d = ni_q;
    if (start_ok) begin
      busy_d = 1'b1;
      done_d = 1'b0;
      err_d = 1'b0;
      code_d = '0;
      cyc_d = '0;
      mac_d = '0;
      lb_d = '0;
      cb_d = '0;
      sb_d = '0;
      ni_d = '0;
    end else if (busy_q) begin
      cyc_d = cyc_q + 32'd1;
      mac_d = mac_q + {31'd0, c_mac};
      lb_d = lb_q + {31'd0, l_busy};
      cb_d = cb_q + {31'd0, c_busy};
      sb_d = sb_q + {31'd0, s_busy};
      ni_d = ni_q + {31'd0, |q_push};
      if (fault_q) begin
        busy_d = 1'b0;
        err_d = 1'b1;
        epc_d = fpc_q;
        code_d = fcode_q;
      end else if (all_idle && !any_err) begin
        busy_d = 1'b0;
        done_d = 1'b1;
      end
    end
  end

  assign any_err = f_err || l_err || c_err || s_err || tok_err;
  assign fcode_d = f_err ? f_code : l_err ? l_code : c_err ? c_code : s_err ? s_code : tc_pkg::ErrToken;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      fault_q <= 1'b0;
    end else begin
      fault_q <= busy_q && !start_ok && !fault_q && any_err;
    end
  end

  always_ff @(posedge clk_i) begin
    fcode_q <= fcode_d;
    fpc_q <= f_pc;
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      busy_q <= 1'b0;
      done_q <= 1'b0;
      err_q <= 1'b0;
      code_q <= '0;
      epc_q <= '0;
      cyc_q <= '0;
      mac_q <= '0;
      lb_q <= '0;
      cb_q <= '0;
      sb_q <= '0;
      ni_q <= '0;
    end else begin
      busy_q <= busy_d;
      done_q <= done_d;
      err_q <= err_d;
      code_q <= code_d;
      epc_q <= epc_d;
      cyc_q <= cyc_d;
      mac_q <= mac_d;
      lb_q <= lb_d;
      cb_q <= cb_d;
      sb_q <= sb_d;
      ni_q <= ni_d;
    end
  end

  always_comb begin
    unique case (csr_addr_i)
      3'd0:    csr_rdata_o = {24'd0, code_q, 1'b0, err_q, done_q, busy_q};
      3'd1:    csr_rdata_o = cyc_q;
      3'd2:    csr_rdata_o = mac_q;
      3'd3:    csr_rdata_o = lb_q;
      3'd4:    csr_rdata_o = cb_q;
      3'd5:    csr_rdata_o = sb_q;
      3'd6:    csr_rdata_o = ni_q;
      default: csr_rdata_o = epc_q;
    endcase
  end

  assign busy_o = busy_q;
  assign done_o = done_q;
  assign error_o = err_q;

  // ---------------------------------------------------------------- dependency tokens
  // tok[0] load->compute, tok[1] compute->load, tok[2] compute->store, tok[3] store->compute
  logic [7:0] tok_d [0:3];
  logic [7:0] tok_q [0:3];
  logic [3:0] tok_push, tok_pop, tok_ovf;
  logic l_pop_nx, l_push_nx, c_pop_pv, c_pop_nx, c_push_pv, c_push_nx, s_pop_pv, s_push_pv;

  assign tok_push = {s_push_pv, c_push_nx, c_push_pv, l_push_nx};
  assign tok_pop  = {c_pop_nx, s_pop_pv, l_pop_nx, c_pop_pv};

  always_comb begin
    for (int t = 0; t < 4; t++) begin
      tok_d[t] = tok_q[t] + {7'd0, tok_push[t]} - {7'd0, tok_pop[t]};
      tok_ovf[t] = tok_push[t] && !tok_pop[t] && (tok_q[t] == 8'hFF);
    end
  end
  assign tok_err = |tok_ovf;

  always_ff @(posedge clk_i) begin
    for (int t = 0; t < 4; t++) begin
      if (!unit_rst_n || start_ok) begin
        tok_q[t] <= '0;
      end else begin
        tok_q[t] <= tok_d[t];
      end
    end
  end

  // ---------------------------------------------------------------- memory arbiter
  logic [2:0]         a_valid, a_ready, a_we;
  // The store unit only writes, so its response strobe is never used.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [2:0]         a_rsp;
  /* verilator lint_on UNUSEDSIGNAL */
  logic [3*32-1:0]    a_addr;
  logic [3*DataW-1:0] a_wdata;
  logic [DataW-1:0]   a_rdata;
  logic [31:0]        f_addr, l_addr, s_addr;
  logic [DataW-1:0]   s_wdata;
  logic               f_req, l_req, s_req;

  // A pending cycle stamp (SYNC stamp) takes the store unit's write port ahead of it for one beat: the store
  // unit sees no ready meanwhile. The select is a register, so the grant path only gains a mux.
  assign a_valid = {s_req || stamp_q, l_req, f_req};
  assign a_we    = 3'b100;
  assign a_addr  = {stamp_q ? stamp_addr_q : s_addr, l_addr, f_addr};
  assign a_wdata = {stamp_q ? {{(DataW - 32){1'b0}}, stamp_cyc_q} : s_wdata, {DataW{1'b0}}, {DataW{1'b0}}};

  tc_mem_arb #(.DataW(DataW)) u_arb (
    .clk_i,
    .rst_ni,
    .req_valid_i    (a_valid),
    .req_ready_o    (a_ready),
    .req_we_i       (a_we),
    .req_addr_i     (a_addr),
    .req_wdata_i    (a_wdata),
    .rsp_valid_o    (a_rsp),
    .rsp_rdata_o    (a_rdata),
    .mem_req_valid_o,
    .mem_req_ready_i,
    .mem_req_we_o,
    .mem_req_addr_o,
    .mem_req_wdata_o,
    .mem_rsp_valid_i,
    .mem_rsp_rdata_i,
    .idle_o         (arb_idle)
  );

  // ---------------------------------------------------------------- fetch and queues
  tc_fetch #(.N(N)) u_fetch (
    .clk_i,
    .rst_ni     (unit_rst_n),
    .start_i    (start_ok),
    .prog_base_i,
    .req_valid_o(f_req),
    .req_ready_i(a_ready[0]),
    .req_addr_o (f_addr),
    .rsp_valid_i(a_rsp[0]),
    .rsp_rdata_i(a_rdata),
    .q_push_o   (q_push),
    .q_full_i   (q_full),
    .instr_o    (f_instr),
    .halted_o   (f_halted),
    .pc_o       (f_pc),
    .err_o      (f_err),
    .err_code_o (f_code)
  );

  for (genvar q = 0; q < 3; q++) begin : g_queue
    tc_fifo #(.Width(tc_pkg::InstrW), .Depth(QueueDepth)) u_q (
      .clk_i,
      .rst_ni (unit_rst_n),
      .push_i (q_push[q]),
      .wdata_i(f_instr),
      .full_o (q_full[q]),
      .pop_i  (q_pop[q]),
      .rdata_o(q_head[q]),
      .empty_o(q_empty[q])
    );
  end

  // ---------------------------------------------------------------- scratchpads
  // INP, WGT and PARAM are written by the load unit and read by another unit only after a
  // dependency token, never in the same cycle at the same word: NoRwCheck maps them onto bare
  // block RAM. The accumulators (read and written by the compute unit itself) and OUT keep the
  // read-first collision logic.
  // Units range-check their 16-bit scratchpad addresses against the depths, so the address bits
  // above each RAM's index width are intentionally unused here.
  /* verilator lint_off UNUSEDSIGNAL */
  logic                      l_we;
  logic [tc_pkg::PatSpW-1:0] l_sel;
  logic [15:0]               l_spa;
  logic [DataW-1:0]          l_wdata;
  logic [15:0]               c_wgt_ra, c_acc_ra, c_acc_wa;
  logic [16*InpPorts-1:0]    c_inp_ra;
  logic [DataW*InpPorts-1:0] inp_rdata;
  logic [DataW*N-1:0]        wgt_rdata;
  logic [32*N-1:0]           c_acc_rdata, s_acc_rdata, c_acc_wdata, prm_rdata;
  logic                      c_acc_we;
  logic [15:0]               s_acc_ra, s_prm_ra, s_out_wa, s_out_ra;
  logic                      s_out_we;
  logic [DataW-1:0]          s_out_wdata, s_out_rdata;
  /* verilator lint_on UNUSEDSIGNAL */

  // INP is one copy per read port, all written alike, so the compute unit reads InpPorts words a cycle.
  for (genvar p = 0; p < InpPorts; p++) begin : g_inp
    tc_ram_1r1w #(.Width(DataW), .Depth(InpDepth), .NoRwCheck(1'b1)) u_inp (
      .clk_i,
      .we_i   (l_we && l_sel == tc_pkg::SpInp),
      .waddr_i(l_spa[InpAw-1:0]),
      .wdata_i(l_wdata),
      .re_i   (1'b1),
      .raddr_i(c_inp_ra[p*16 +: InpAw]),
      .rdata_o(inp_rdata[p*DataW +: DataW])
    );
  end

  // Weight tile t, row r lives in bank r at index t, so a whole tile is read in one cycle.
  for (genvar r = 0; r < N; r++) begin : g_wgt
    tc_ram_1r1w #(.Width(DataW), .Depth(WgtTiles), .NoRwCheck(1'b1)) u_wgt (
      .clk_i,
      .we_i   (l_we && l_sel == tc_pkg::SpWgt && l_spa[LogN-1:0] == LogN'(r)),
      .waddr_i(l_spa[LogN +: WgtAw]),
      .wdata_i(l_wdata),
      .re_i   (1'b1),
      .raddr_i(c_wgt_ra[WgtAw-1:0]),
      .rdata_o(wgt_rdata[r*DataW +: DataW])
    );
  end

  // Parameter row R (N int32) is split over four banks of N bytes; load word w -> bank w%4, row w/4.
  for (genvar b = 0; b < 4; b++) begin : g_prm
    tc_ram_1r1w #(.Width(DataW), .Depth(ParamRows), .NoRwCheck(1'b1)) u_prm (
      .clk_i,
      .we_i   (l_we && l_sel == tc_pkg::SpParam && l_spa[1:0] == 2'(b)),
      .waddr_i(l_spa[2 +: PrmAw]),
      .wdata_i(l_wdata),
      .re_i   (1'b1),
      .raddr_i(s_prm_ra[PrmAw-1:0]),
      .rdata_o(prm_rdata[b*DataW +: DataW])
    );
  end

  // Two copies of the accumulators give the compute unit and the post-processor a read port each.
  tc_ram_1r1w #(.Width(32*N), .Depth(AccDepth)) u_acc_c (
    .clk_i,
    .we_i   (c_acc_we),
    .waddr_i(c_acc_wa[AccAw-1:0]),
    .wdata_i(c_acc_wdata),
    .re_i   (1'b1),
    .raddr_i(c_acc_ra[AccAw-1:0]),
    .rdata_o(c_acc_rdata)
  );
  tc_ram_1r1w #(.Width(32*N), .Depth(AccDepth)) u_acc_s (
    .clk_i,
    .we_i   (c_acc_we),
    .waddr_i(c_acc_wa[AccAw-1:0]),
    .wdata_i(c_acc_wdata),
    .re_i   (1'b1),
    .raddr_i(s_acc_ra[AccAw-1:0]),
    .rdata_o(s_acc_rdata)
  );

  tc_ram_1r1w #(.Width(DataW), .Depth(OutDepth)) u_out (
    .clk_i,
    .we_i   (s_out_we),
    .waddr_i(s_out_wa[OutAw-1:0]),
    .wdata_i(s_out_wdata),
    .re_i   (1'b1),
    .raddr_i(s_out_ra[OutAw-1:0]),
    .rdata_o(s_out_rdata)
  );

  // ---------------------------------------------------------------- units
  tc_load #(
    .N(N), .InpDepth(InpDepth), .WgtRows(WgtRows), .ParamWords(4 * ParamRows)
  ) u_load (
    .clk_i,
    .rst_ni         (unit_rst_n),
    .instr_i        (q_head[0]),
    .instr_valid_i  (!q_empty[0]),
    .instr_pop_o    (q_pop[0]),
    .tok_next_i     (tok_q[1] != '0),
    .tok_pop_next_o (l_pop_nx),
    .tok_push_next_o(l_push_nx),
    .req_valid_o    (l_req),
    .req_ready_i    (a_ready[1]),
    .req_addr_o     (l_addr),
    .rsp_valid_i    (a_rsp[1]),
    .rsp_rdata_i    (a_rdata),
    .sp_we_o        (l_we),
    .sp_sel_o       (l_sel),
    .sp_addr_o      (l_spa),
    .sp_wdata_o     (l_wdata),
    .busy_o         (l_busy),
    .err_o          (l_err),
    .err_code_o     (l_code)
  );

  // ---------------------------------------------------------------- cycle stamps
  // A compute-queue SYNC with the stamp flag records the cycle counter when the compute unit retires it (its
  // tokens taken, e.g. a layer's last stores landed) and writes it, zero-extended to a word, at its base: the
  // per-layer cycle log of a run that covers several layers. A second stamp waits at the queue head while one
  // is still pending, so none is lost; the run is done only once the last one is written.
  assign c_stamp_head = q_head[1][tc_pkg::OpLsb +: tc_pkg::OpW] == tc_pkg::OpSync
                        && q_head[1][tc_pkg::SyncStampLsb];
  assign c_valid = !q_empty[1] && !(c_stamp_head && stamp_q);

  always_ff @(posedge clk_i) begin
    if (!unit_rst_n || start_ok) begin
      stamp_q <= 1'b0;
      stamp_addr_q <= '0;
      stamp_cyc_q <= '0;
    end else if (q_pop[1] && c_stamp_head) begin
      stamp_q <= 1'b1;
      stamp_addr_q <= {{LogN{1'b0}}, q_head[1][tc_pkg::SyncBaseLsb + LogN +: 32 - LogN]};
      stamp_cyc_q <= cyc_q;
    end else if (stamp_q && a_ready[2]) begin
      stamp_q <= 1'b0;
    end
  end

  tc_compute #(
    .N(N), .InpDepth(InpDepth), .WgtTiles(WgtTiles), .AccDepth(AccDepth), .InpPorts(InpPorts)
  ) u_compute (
    .clk_i,
    .rst_ni         (unit_rst_n),
    .instr_i        (q_head[1]),
    .instr_valid_i  (c_valid),
    .instr_pop_o    (q_pop[1]),
    .tok_prev_i     (tok_q[0] != '0),
    .tok_next_i     (tok_q[3] != '0),
    .tok_pop_prev_o (c_pop_pv),
    .tok_pop_next_o (c_pop_nx),
    .tok_push_prev_o(c_push_pv),
    .tok_push_next_o(c_push_nx),
    .inp_raddr_o    (c_inp_ra),
    .inp_rdata_i    (inp_rdata),
    .wgt_raddr_o    (c_wgt_ra),
    .wgt_rdata_i    (wgt_rdata),
    .acc_raddr_o    (c_acc_ra),
    .acc_rdata_i    (c_acc_rdata),
    .acc_we_o       (c_acc_we),
    .acc_waddr_o    (c_acc_wa),
    .acc_wdata_o    (c_acc_wdata),
    .busy_o         (c_busy),
    .mac_o          (c_mac),
    .err_o          (c_err),
    .err_code_o     (c_code)
  );

  tc_store #(
    .N(N), .AccDepth(AccDepth), .OutDepth(OutDepth), .ParamRows(ParamRows)
  ) u_store (
    .clk_i,
    .rst_ni         (unit_rst_n),
    .instr_i        (q_head[2]),
    .instr_valid_i  (!q_empty[2]),
    .instr_pop_o    (q_pop[2]),
    .tok_prev_i     (tok_q[2] != '0),
    .tok_pop_prev_o (s_pop_pv),
    .tok_push_prev_o(s_push_pv),
    .req_valid_o    (s_req),
    .req_ready_i    (a_ready[2] && !stamp_q),
    .req_addr_o     (s_addr),
    .req_wdata_o    (s_wdata),
    .acc_raddr_o    (s_acc_ra),
    .acc_rdata_i    (s_acc_rdata),
    .prm_raddr_o    (s_prm_ra),
    .prm_rdata_i    (prm_rdata),
    .out_we_o       (s_out_we),
    .out_waddr_o    (s_out_wa),
    .out_wdata_o    (s_out_wdata),
    .out_raddr_o    (s_out_ra),
    .out_rdata_i    (s_out_rdata),
    .busy_o         (s_busy),
    .err_o          (s_err),
    .err_code_o     (s_code)
  );
endmodule
