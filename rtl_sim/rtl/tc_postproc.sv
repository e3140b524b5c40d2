// Post-processing engine (inside the store unit): turns int32 accumulator rows into int8 rows.
// Normal mode streams one row per cycle:
//   out[out_base+i][c] = clamp(RQ((acc[a+i][c] + bias0[c]) << lshift, mult0[c], shift0[c]) + zp)
// Add mode (residual add, 5 cycles per row), with parameter sets P (a), P+1 (b), P+2 (output):
//   ra = RQ((acc[a+i] + bias0) << lshift, mult0, shift0)
//   rb = RQ((acc[b+i] + bias1) << lshift, mult1, shift1)
//   out = clamp(RQ(ra + rb + bias2, mult2, shift2) + zp)
// RQ is tc_requant (TFLite double rounding). A parameter set is three rows of N int32:
// bias, multiplier, shift.
module tc_postproc #(
  parameter int unsigned N         = 8,
  parameter int unsigned AccDepth  = 1024,
  parameter int unsigned OutDepth  = 1024,
  parameter int unsigned ParamRows = 192
) (
  input  logic            clk_i,
  input  logic            rst_ni,
  input  logic            start_i,
  // Only the POSTPROC fields are decoded; the rest of the word is reserved.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [255:0]    instr_i,
  /* verilator lint_on UNUSEDSIGNAL */
  output logic            done_o,
  output logic            err_o,
  output logic [15:0]     acc_raddr_o,
  input  logic [32*N-1:0] acc_rdata_i,
  output logic [15:0]     prm_raddr_o,
  input  logic [32*N-1:0] prm_rdata_i,
  output logic            out_we_o,
  output logic [15:0]     out_waddr_o,
  output logic [8*N-1:0]  out_wdata_o
);
  typedef enum logic [3:0] {
    StIdle, StPrm, StRa, StStream, StRb, StQa, StQb, StQo
  } state_e;
  state_e state_d, state_q;

  wire        add_mode = instr_i[8];
  wire [15:0] acc_a    = instr_i[31:16];
  wire [15:0] acc_b    = instr_i[47:32];
  wire [15:0] out_base = instr_i[63:48];
  wire [15:0] rows     = instr_i[79:64];
  wire [11:0] pset     = instr_i[91:80];
  wire [7:0]  zp       = instr_i[99:92];
  wire [7:0]  lo       = instr_i[107:100];
  wire [7:0]  hi       = instr_i[115:108];
  wire [4:0]  lshift   = instr_i[120:116];

  logic [3:0]  k_d, k_q;           // parameter row being fetched
  logic [15:0] i_d, i_q;           // output row
  logic [32*N-1:0] prm_q [0:8];
  logic        prm_cap;
  logic [3:0]  prm_idx;
  logic [32*N-1:0] xa_d, xa_q, xb_d, xb_q, ra_d, ra_q, rb_d, rb_q;
  logic [1:0]  set;
  logic [32*N-1:0] lane_in, lane_r32;
  logic [8*N-1:0]  lane_q8;
  logic [4:0]  lane_ls;
  logic [3:0]  nrows;
  logic [16:0] prm_base, prm_last;
  logic [16:0] ra_addr, rb_addr, wr_addr;
  logic [3:0]  row_bias, row_mult, row_shift;

  assign nrows = add_mode ? 4'd9 : 4'd3;
  assign prm_base = {5'd0, pset} + {4'd0, pset, 1'b0};
  assign prm_last = prm_base + {13'd0, nrows} - 17'd1;
  assign ra_addr = {1'b0, acc_a} + {1'b0, i_q};
  assign rb_addr = {1'b0, acc_b} + {1'b0, i_q};
  assign wr_addr = {1'b0, out_base} + {1'b0, i_q};

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
      .acc_i   (lane_in[c*32 +: 32]),
      .bias_i  (prm_q[row_bias][c*32 +: 32]),
      .lshift_i(lane_ls),
      .mult_i  (prm_q[row_mult][c*32 +: 32]),
      .shift_i (prm_q[row_shift][c*32 +: 5]),
      .zp_i    (zp),
      .lo_i    (lo),
      .hi_i    (hi),
      .r32_o   (lane_r32[c*32 +: 32]),
      .q8_o    (lane_q8[c*8 +: 8])
    );
  end

  always_comb begin
    set = 2'd0;
    lane_ls = lshift;
    lane_in = acc_rdata_i;
    unique case (state_q)
      StQa: lane_in = xa_q;
      StQb: begin
        set = 2'd1;
        lane_in = xb_q;
      end
      StQo: begin
        set = 2'd2;
        lane_ls = 5'd0;
        for (int c = 0; c < N; c++) begin
          lane_in[c*32 +: 32] = ra_q[c*32 +: 32] + rb_q[c*32 +: 32];
        end
      end
      default: ;
    endcase
  end

  always_comb begin
    state_d = state_q;
    k_d = k_q;
    i_d = i_q;
    xa_d = xa_q;
    xb_d = xb_q;
    ra_d = ra_q;
    rb_d = rb_q;
    done_o = 1'b0;
    err_o = 1'b0;
    prm_cap = 1'b0;
    prm_idx = k_q - 4'd1;
    prm_raddr_o = prm_base[15:0] + {12'd0, k_q};
    acc_raddr_o = ra_addr[15:0];
    out_we_o = 1'b0;
    out_waddr_o = wr_addr[15:0];
    out_wdata_o = lane_q8;
    unique case (state_q)
      StIdle: begin
        if (start_i) begin
          k_d = '0;
          i_d = '0;
          state_d = StPrm;
        end
      end
      StPrm: begin
        if (prm_last >= 17'(ParamRows)) begin
          err_o = 1'b1;
        end else begin
          prm_cap = (k_q != '0);
          k_d = k_q + 4'd1;
          if (k_q == nrows) begin
            state_d = (rows == '0) ? StIdle : StRa;
            done_o = (rows == '0);
          end
        end
      end
      StRa: begin
        if (ra_addr >= 17'(AccDepth) || (add_mode && rb_addr >= 17'(AccDepth))) begin
          err_o = 1'b1;
        end else begin
          state_d = add_mode ? StRb : StStream;
        end
      end
      StStream: begin
        // Row i's accumulator is on the RAM output: write it, and read row i+1 meanwhile.
        if (wr_addr >= 17'(OutDepth)) begin
          err_o = 1'b1;
        end else begin
          out_we_o = 1'b1;
          i_d = i_q + 16'd1;
          acc_raddr_o = ra_addr[15:0] + 16'd1;
          if (i_q + 16'd1 == rows) begin
            state_d = StIdle;
            done_o = 1'b1;
          end else if (ra_addr + 17'd1 >= 17'(AccDepth)) begin
            err_o = 1'b1;
          end
        end
      end
      StRb: begin
        xa_d = acc_rdata_i;
        acc_raddr_o = rb_addr[15:0];
        state_d = StQa;
      end
      StQa: begin
        xb_d = acc_rdata_i;
        ra_d = lane_r32;
        state_d = StQb;
      end
      StQb: begin
        rb_d = lane_r32;
        state_d = StQo;
      end
      StQo: begin
        if (wr_addr >= 17'(OutDepth)) begin
          err_o = 1'b1;
        end else begin
          out_we_o = 1'b1;
          i_d = i_q + 16'd1;
          if (i_q + 16'd1 == rows) begin
            state_d = StIdle;
            done_o = 1'b1;
          end else begin
            state_d = StRa;
          end
        end
      end
      default: state_d = StIdle;
    endcase
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      k_q <= '0;
      i_q <= '0;
      xa_q <= '0;
      xb_q <= '0;
      ra_q <= '0;
      rb_q <= '0;
    end else begin
      state_q <= state_d;
      k_q <= k_d;
      i_q <= i_d;
      xa_q <= xa_d;
      xb_q <= xb_d;
      ra_q <= ra_d;
      rb_q <= rb_d;
    end
  end

  // Parameter registers: plain data captured from the parameter scratchpad.
  always_ff @(posedge clk_i) begin
    if (prm_cap) begin
      prm_q[prm_idx] <= prm_rdata_i;
    end
  end
endmodule
