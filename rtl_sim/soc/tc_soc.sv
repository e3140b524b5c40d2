// A minimal RISC-V SoC: the VexRiscv core (SpinalHDL's RV32IM configuration with 4 KiB instruction and data caches,
// as pythondata-cpu-vexriscv ships it; or its RV32IMAC sibling) on Wishbone, one memory for code and data at
// 0x0000_0000 and the peripheral registers of tc_soc_io at 0xF000_0000. An access to any other address is
// acknowledged (reads give 0) and latched in fault_o / fault_addr_o, so a test bench stops at once: this core's
// Wishbone bridges ignore ERR and would wait for an acknowledge forever.
//
// With AccelN > 0 the accelerator (tc_accel, an AccelN x AccelN array) joins: its memory (tc_soc_accel_mem, shared
// with the core) at 0x9000_0000 and its registers (tc_soc_accel_regs) at 0xF000_1000, both uncached.
// Reset: synchronous, active low, like the accelerator's and the core's.
// InitFile: a firmware image ($readmemh, one 32-bit word per line) the memory starts with on an FPGA; empty in
// simulation, where the test bench names the image at run time.
module tc_soc #(
  parameter int unsigned MemWords      = 131072,  // the memory's size in 32-bit words (512 KiB)
  parameter int unsigned AccelN        = 0,       // 0: no accelerator; else its array size (4, 8 or 16)
  parameter int unsigned AccelMemWords = 1024,    // the accelerator memory's AccelN-byte words
  // tc_accel's scratchpads (used only with AccelN > 0; tinycompile.accel.config sets them)
  parameter int unsigned InpDepth      = 1,
  parameter int unsigned WgtTiles      = 1,
  parameter int unsigned AccDepth      = 1,
  parameter int unsigned OutDepth      = 1,
  parameter int unsigned ParamSets     = 1,
  parameter int unsigned InpPorts      = 1,
  parameter int unsigned QueueDepth    = 8,       // tc_accel's unit queues
  parameter              InitFile      = ""
) (
  input  logic        clk_i,
  input  logic        rst_ni,
  output logic        tx_valid_o,
  output logic [7:0]  tx_data_o,
  input  logic        tx_ready_i,  // the TX sink (a board's UART) can take a byte; a TX write waits until it can
  output logic        exit_o,
  output logic [31:0] exit_code_o,
  output logic        fault_o,
  output logic [31:0] fault_addr_o,
  output logic [63:0] cycles_o
);
  localparam int unsigned AddrW = $clog2(MemWords);
  localparam logic [27:0] IoBase = 28'hF00_0000;  // byte address 0xF000_0000 >> 4: the block's 16 bytes

  // The core's two Wishbone masters (word addresses).
  logic        ibus_cyc, ibus_stb, ibus_ack, ibus_err, ibus_we;
  logic [29:0] ibus_adr;
  logic [31:0] ibus_miso, ibus_mosi;
  logic [3:0]  ibus_sel;
  logic [2:0]  ibus_cti;
  logic [1:0]  ibus_bte;
  logic        dbus_cyc, dbus_stb, dbus_ack, dbus_err, dbus_we;
  logic [29:0] dbus_adr;
  logic [31:0] dbus_miso, dbus_mosi;
  logic [3:0]  dbus_sel;
  logic [2:0]  dbus_cti;
  logic [1:0]  dbus_bte;

  VexRiscv u_core (
    .externalResetVector    (32'h0000_0000),
    .timerInterrupt         (1'b0),
    .softwareInterrupt      (1'b0),
    .externalInterruptArray (32'h0),
    .iBusWishbone_CYC       (ibus_cyc),
    .iBusWishbone_STB       (ibus_stb),
    .iBusWishbone_ACK       (ibus_ack),
    .iBusWishbone_WE        (ibus_we),
    .iBusWishbone_ADR       (ibus_adr),
    .iBusWishbone_DAT_MISO  (ibus_miso),
    .iBusWishbone_DAT_MOSI  (ibus_mosi),
    .iBusWishbone_SEL       (ibus_sel),
    .iBusWishbone_ERR       (ibus_err),
    .iBusWishbone_CTI       (ibus_cti),
    .iBusWishbone_BTE       (ibus_bte),
    .dBusWishbone_CYC       (dbus_cyc),
    .dBusWishbone_STB       (dbus_stb),
    .dBusWishbone_ACK       (dbus_ack),
    .dBusWishbone_WE        (dbus_we),
    .dBusWishbone_ADR       (dbus_adr),
    .dBusWishbone_DAT_MISO  (dbus_miso),
    .dBusWishbone_DAT_MOSI  (dbus_mosi),
    .dBusWishbone_SEL       (dbus_sel),
    .dBusWishbone_ERR       (dbus_err),
    .dBusWishbone_CTI       (dbus_cti),
    .dBusWishbone_BTE       (dbus_bte),
    .clk                    (clk_i),
    .reset                  (!rst_ni)
  );

  // Address decoding. Classic Wishbone holds the address until the acknowledge, so the read data are selected by
  // the current address.
  logic i_req, i_mem, d_req, d_mem, d_io, d_amem, d_areg, d_map;
  assign i_req = ibus_cyc && ibus_stb;
  assign i_mem = ibus_adr[29:AddrW] == '0;
  assign d_req = dbus_cyc && dbus_stb;
  assign d_mem = dbus_adr[29:AddrW] == '0;
  assign d_io  = dbus_adr[29:2] == IoBase;
  assign d_map = d_mem || d_io || d_amem || d_areg;

  logic        mem_a_ack, mem_b_ack, io_ack;
  logic [31:0] mem_a_dat, mem_b_dat, io_dat;

  tc_soc_ram #(
    .Words(MemWords),
    .InitFile(InitFile)
  ) u_ram (
    .clk_i,
    .rst_ni,
    .a_stb_i (i_req && i_mem),
    .a_adr_i (ibus_adr[AddrW-1:0]),
    .a_ack_o (mem_a_ack),
    .a_dat_o (mem_a_dat),
    .b_stb_i (d_req && d_mem),
    .b_we_i  (dbus_we),
    .b_sel_i (dbus_sel),
    .b_adr_i (dbus_adr[AddrW-1:0]),
    .b_dat_i (dbus_mosi),
    .b_ack_o (mem_b_ack),
    .b_dat_o (mem_b_dat)
  );

  tc_soc_io u_io (
    .clk_i,
    .rst_ni,
    .stb_i       (d_req && d_io),
    .we_i        (dbus_we),
    .adr_i       (dbus_adr[1:0]),
    .dat_i       (dbus_mosi),
    .ack_o       (io_ack),
    .dat_o       (io_dat),
    .tx_valid_o,
    .tx_data_o,
    .tx_ready_i,
    .exit_o,
    .exit_code_o,
    .cycles_o
  );

  // The accelerator: registers on the data bus, its memory shared with the core.
  logic        amem_ack, areg_ack;
  logic [31:0] amem_dat, areg_dat;
  if (AccelN > 0) begin : g_accel
    localparam int unsigned AmemAw = $clog2(AccelMemWords * AccelN / 4);  // 32-bit word address bits
    localparam logic [29:0] AmemBase = 30'h2400_0000;  // byte address 0x9000_0000 as a word address
    localparam logic [25:0] AregBase = 26'h3C0_0040;   // byte address 0xF000_1000 >> 6: the block's 64 bytes
    logic               start, busy, done, error, req_valid, req_ready, req_we, rsp_valid, oob;
    logic [31:0]        prog_base, csr_rdata, req_addr;
    logic [2:0]         csr_addr;
    logic [8*AccelN-1:0] req_wdata, rsp_rdata;

    assign d_amem = dbus_adr[29:AmemAw] == AmemBase[29:AmemAw];
    assign d_areg = dbus_adr[29:4] == AregBase;

    tc_accel #(
      .N(AccelN), .InpDepth(InpDepth), .WgtTiles(WgtTiles), .AccDepth(AccDepth), .OutDepth(OutDepth),
      .ParamSets(ParamSets), .InpPorts(InpPorts), .QueueDepth(QueueDepth)
    ) u_accel (
      .clk_i,
      .rst_ni,
      .start_i        (start),
      .prog_base_i    (prog_base),
      .csr_addr_i     (csr_addr),
      .csr_rdata_o    (csr_rdata),
      .busy_o         (busy),
      .done_o         (done),
      .error_o        (error),
      .mem_req_valid_o(req_valid),
      .mem_req_ready_i(req_ready),
      .mem_req_we_o   (req_we),
      .mem_req_addr_o (req_addr),
      .mem_req_wdata_o(req_wdata),
      .mem_rsp_valid_i(rsp_valid),
      .mem_rsp_rdata_i(rsp_rdata)
    );

    tc_soc_accel_mem #(
      .N(AccelN),
      .Words(AccelMemWords)
    ) u_accel_mem (
      .clk_i,
      .rst_ni,
      .req_valid_i (req_valid),
      .req_ready_o (req_ready),
      .req_we_i    (req_we),
      .req_addr_i  (req_addr),
      .req_wdata_i (req_wdata),
      .rsp_valid_o (rsp_valid),
      .rsp_rdata_o (rsp_rdata),
      .oob_o       (oob),
      .b_stb_i     (d_req && d_amem),
      .b_we_i      (dbus_we),
      .b_sel_i     (dbus_sel),
      .b_adr_i     (dbus_adr[AmemAw-1:0]),
      .b_dat_i     (dbus_mosi),
      .b_ack_o     (amem_ack),
      .b_dat_o     (amem_dat)
    );

    tc_soc_accel_regs u_accel_regs (
      .clk_i,
      .rst_ni,
      .stb_i       (d_req && d_areg),
      .we_i        (dbus_we),
      .adr_i       (dbus_adr[3:0]),
      .dat_i       (dbus_mosi),
      .ack_o       (areg_ack),
      .dat_o       (areg_dat),
      .start_o     (start),
      .prog_base_o (prog_base),
      .csr_addr_o  (csr_addr),
      .csr_rdata_i (csr_rdata),
      .busy_i      (busy),
      .oob_i       (oob),
      .oob_addr_i  (req_addr)
    );

    // done and error are in the status register the firmware polls
    logic unused_status;
    assign unused_status = ^{done, error};
  end else begin : g_no_accel
    logic [31:0] unused_sizes;  // the accelerator's sizes matter only with it
    assign unused_sizes = InpDepth ^ WgtTiles ^ AccDepth ^ OutDepth ^ ParamSets ^ InpPorts ^ QueueDepth
                        ^ AccelMemWords;
    assign d_amem   = 1'b0;
    assign d_areg   = 1'b0;
    assign amem_ack = 1'b0;
    assign areg_ack = 1'b0;
    assign amem_dat = '0;
    assign areg_dat = '0;
  end

  // Unmapped accesses: acknowledged one cycle later like any other, and the first such address latched for the
  // test bench.
  logic        i_miss_q, d_miss_q, fault_q;
  logic [31:0] fault_addr_q;
  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      i_miss_q     <= 1'b0;
      d_miss_q     <= 1'b0;
      fault_q      <= 1'b0;
      fault_addr_q <= '0;
    end else begin
      i_miss_q <= i_req && !i_mem && !i_miss_q;
      d_miss_q <= d_req && !d_map && !d_miss_q;
      if (!fault_q && i_req && !i_mem) begin
        fault_q      <= 1'b1;
        fault_addr_q <= {ibus_adr, 2'b00};
      end else if (!fault_q && d_req && !d_map) begin
        fault_q      <= 1'b1;
        fault_addr_q <= {dbus_adr, 2'b00};
      end
    end
  end

  assign ibus_ack  = mem_a_ack || i_miss_q;
  assign ibus_err  = 1'b0;  // ignored by the core's bridges; the miss is acknowledged and reported instead
  assign ibus_miso = i_mem ? mem_a_dat : '0;
  assign dbus_ack  = mem_b_ack || io_ack || amem_ack || areg_ack || d_miss_q;
  assign dbus_err  = 1'b0;
  assign dbus_miso = d_io ? io_dat : d_mem ? mem_b_dat : d_amem ? amem_dat : d_areg ? areg_dat : '0;

  assign fault_o      = fault_q;
  assign fault_addr_o = fault_addr_q;

  // The instruction bus never writes; burst hints are not needed by a memory that answers every word alike.
  logic unused_bus;
  assign unused_bus = ^{ibus_we, ibus_mosi, ibus_sel, ibus_cti, ibus_bte, dbus_cti, dbus_bte};
endmodule
