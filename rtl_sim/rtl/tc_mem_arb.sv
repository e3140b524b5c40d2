// Round-robin arbiter from three requesters (0 fetch, 1 load, 2 store) onto the single external
// memory port. Requests use valid/ready; read responses come back in order (rsp_valid, no
// back-pressure), so a FIFO of requester ids routes each response to whoever issued the read.
// Writes are posted and produce no response.
module tc_mem_arb #(
  parameter int unsigned DataW,        // bus bits (8 N)
  parameter int unsigned IdDepth = 16
) (
  input  logic                clk_i,
  input  logic                rst_ni,
  // requesters
  input  logic [2:0]          req_valid_i,
  output logic [2:0]          req_ready_o,
  input  logic [2:0]          req_we_i,
  input  logic [3*32-1:0]     req_addr_i,
  input  logic [3*DataW-1:0]  req_wdata_i,
  output logic [2:0]          rsp_valid_o,
  output logic [DataW-1:0]    rsp_rdata_o,
  // external memory
  output logic                mem_req_valid_o,
  input  logic                mem_req_ready_i,
  output logic                mem_req_we_o,
  output logic [31:0]         mem_req_addr_o,
  output logic [DataW-1:0]    mem_req_wdata_o,
  input  logic                mem_rsp_valid_i,
  input  logic [DataW-1:0]    mem_rsp_rdata_i,
  output logic                idle_o
);
  logic [1:0] last_d, last_q;
  logic [1:0] gnt;
  logic       gnt_valid;
  logic       id_full, id_empty;
  logic [1:0] id_head;
  logic [2:0] eligible;

  // A read may only go out while the id FIFO has room for its tag.
  assign eligible = req_valid_i & (req_we_i | {3{!id_full}});

  // Round-robin: candidates in priority order last+1, last+2, last+3 (= last), all mod 3, written
  // out as a table on the 2-bit last_q (a modulo on 32-bit operands synthesises to a divider).
  // last_q only ever holds 0..2 (reset 0, loaded from gnt); the unreachable 3 takes the order of
  // 0, as (3 + off + 1) mod 3 did.
  always_comb begin
    gnt = 2'd0;
    gnt_valid = 1'b1;
    unique case (last_q)
      2'd1: begin
        if (eligible[2])      gnt = 2'd2;
        else if (eligible[0]) gnt = 2'd0;
        else if (eligible[1]) gnt = 2'd1;
        else                  gnt_valid = 1'b0;
      end
      2'd2: begin
        if (eligible[0])      gnt = 2'd0;
        else if (eligible[1]) gnt = 2'd1;
        else if (eligible[2]) gnt = 2'd2;
        else                  gnt_valid = 1'b0;
      end
      default: begin
        if (eligible[1])      gnt = 2'd1;
        else if (eligible[2]) gnt = 2'd2;
        else if (eligible[0]) gnt = 2'd0;
        else                  gnt_valid = 1'b0;
      end
    endcase
  end

  // The requester's fields and its ready by one-hot selects, not indexed by gnt: yosys builds an indexed part
  // select or bit write from 32-bit index arithmetic (a carry chain), which put it on the SoC's critical path
  // (grant -> the store unit's ready -> its queue pop).
  logic [2:0] sel;
  assign sel = gnt_valid ? {gnt == 2'd2, gnt == 2'd1, gnt == 2'd0} : 3'b000;

  always_comb begin
    mem_req_we_o    = 1'b0;
    mem_req_addr_o  = '0;
    mem_req_wdata_o = '0;
    for (int r = 0; r < 3; r++) begin
      mem_req_we_o    |= sel[r] && req_we_i[r];
      mem_req_addr_o  |= {32{sel[r]}} & req_addr_i[r*32 +: 32];
      mem_req_wdata_o |= {DataW{sel[r]}} & req_wdata_i[r*DataW +: DataW];
    end
  end
  assign mem_req_valid_o = gnt_valid;
  assign req_ready_o = sel & {3{mem_req_ready_i}};

  always_comb begin
    last_d = last_q;
    if (gnt_valid && mem_req_ready_i) begin
      last_d = gnt;
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      last_q <= 2'd0;
    end else begin
      last_q <= last_d;
    end
  end

  tc_fifo #(.Width(2), .Depth(IdDepth)) u_ids (
    .clk_i,
    .rst_ni,
    .push_i (gnt_valid && mem_req_ready_i && !mem_req_we_o),
    .wdata_i(gnt),
    .full_o (id_full),
    .pop_i  (mem_rsp_valid_i),
    .rdata_o(id_head),
    .empty_o(id_empty)
  );

  assign rsp_valid_o = {3{mem_rsp_valid_i}} & {id_head == 2'd2, id_head == 2'd1, id_head == 2'd0};
  assign rsp_rdata_o = mem_rsp_rdata_i;
  assign idle_o = id_empty;
endmodule
