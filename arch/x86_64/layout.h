/* Guest-physical memory map of an x86-64 runvm guest. Every guest address
 * the VMM uses comes from here; no other file hard-codes one. */
#ifndef RUNVM_LAYOUT_H
#define RUNVM_LAYOUT_H

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* Low memory used during boot (all below 1 MiB, inside RAM). */
#define LAYOUT_GDT_ADDR       0x500ULL  /* boot GDT (4 entries) */
#define LAYOUT_IDT_ADDR       0x520ULL  /* empty IDT */
#define LAYOUT_ZERO_PAGE_ADDR 0x7000ULL /* struct boot_params */
#define LAYOUT_BOOT_STACK     0x8ff0ULL /* initial RSP */
#define LAYOUT_PML4_ADDR      0x9000ULL /* identity page tables: PML4, */
#define LAYOUT_PDPT_ADDR      0xa000ULL /*   one PDPT, */
#define LAYOUT_PD_ADDR        0xb000ULL /*   four PDs (2 MiB pages, 4 GiB) */
#define LAYOUT_PD_COUNT       4
#define LAYOUT_CMDLINE_ADDR   0x20000ULL  /* kernel command line */
#define LAYOUT_CMDLINE_MAX    0x10000ULL  /* 64 KiB, > COMMAND_LINE_SIZE */
#define LAYOUT_MPTABLE_ADDR   0x9fc00ULL  /* MP floating pointer + table, */
#define LAYOUT_MPTABLE_MAX    0x400ULL    /*   in the last KiB of base RAM */
#define LAYOUT_EBDA_START     0x9fc00ULL  /* e820: RAM ends here, */
#define LAYOUT_HIGH_RAM_START 0x100000ULL /* and restarts at 1 MiB */
#define LAYOUT_KERNEL_ADDR    0x100000ULL /* protected-mode kernel */

/* KVM needs three pages for the TSS and one for the identity map, inside
 * the 4 GiB space but outside RAM and any MMIO; put them just below the
 * IOAPIC as Firecracker and QEMU do. */
#define LAYOUT_TSS_ADDR     0xfffbd000ULL
#define LAYOUT_IDENTITY_MAP 0xfffbc000ULL

/* The MMIO hole: guest RAM never overlaps [HOLE_START, 4 GiB). RAM larger
 * than HOLE_START continues at 4 GiB in a second memory slot. */
#define LAYOUT_MMIO_HOLE_START 0xc0000000ULL
#define LAYOUT_MMIO_HOLE_END   0x100000000ULL

/* virtio-mmio devices: 4 KiB windows from here, one per device. */
#define LAYOUT_VIRTIO_MMIO_BASE 0xd0000000ULL
#define LAYOUT_VIRTIO_MMIO_SIZE 0x1000ULL
#define LAYOUT_VIRTIO_MMIO_MAX  16

/* Interrupt lines handed to devices. IRQ 0-4 are legacy (PIT, keyboard,
 * cascade, COM2, COM1); virtio devices get GSIs from here up. */
#define LAYOUT_IRQ_COM1        4
#define LAYOUT_IRQ_VIRTIO_BASE 5
#define LAYOUT_IRQ_MAX         23 /* last IOAPIC pin */

#define LAYOUT_IOAPIC_ADDR 0xfec00000ULL
#define LAYOUT_LAPIC_ADDR  0xfee00000ULL

/* Port I/O. */
#define LAYOUT_PORT_COM1       0x3f8
#define LAYOUT_PORT_I8042_DATA 0x60
#define LAYOUT_PORT_I8042_CMD  0x64
/* Boot timer: a guest write of any byte records a timestamp. 0x440 is
 * unused on PCs (Firecracker uses the same port for the same purpose). */
#define LAYOUT_PORT_BOOT_TIMER 0x440

#endif
