#include "arch/x86_64/mptable.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/layout.h"

/* MP spec 1.4 §4.1: MP floating pointer structure, 16 bytes. */
struct mpf_intel {
    char signature[4];     /* "_MP_" */
    uint32_t physptr;      /* configuration table address */
    uint8_t length;        /* in 16-byte units: 1 */
    uint8_t specification; /* 4 = version 1.4 */
    uint8_t checksum;      /* all bytes sum to 0 */
    uint8_t feature1;      /* 0: a configuration table is present */
    uint8_t feature2;
    uint8_t feature3;
    uint8_t feature4;
    uint8_t feature5;
} __attribute__((packed));

/* §4.2: configuration table header, 44 bytes. */
struct mpc_table {
    char signature[4]; /* "PCMP" */
    uint16_t length;   /* base table incl. entries */
    uint8_t spec;
    uint8_t checksum;
    char oem[8];
    char productid[12];
    uint32_t oemptr;
    uint16_t oemsize;
    uint16_t oemcount; /* number of entries */
    uint32_t lapic;    /* local APIC address */
    uint16_t reserved;
    uint8_t reserved2;
    uint8_t reserved3;
} __attribute__((packed));

/* §4.3.1 processor entry, 20 bytes. */
struct mpc_cpu {
    uint8_t type; /* 0 */
    uint8_t apicid;
    uint8_t apicver;
    uint8_t cpuflag;
    uint32_t cpufeature;
    uint32_t featureflag;
    uint32_t reserved[2];
} __attribute__((packed));

/* §4.3.2 bus entry, 8 bytes. */
struct mpc_bus {
    uint8_t type; /* 1 */
    uint8_t busid;
    char bustype[6];
} __attribute__((packed));

/* §4.3.3 I/O APIC entry, 8 bytes. */
struct mpc_ioapic {
    uint8_t type; /* 2 */
    uint8_t apicid;
    uint8_t apicver;
    uint8_t flags;
    uint32_t apicaddr;
} __attribute__((packed));

/* §4.3.4 I/O interrupt and §4.3.5 local interrupt entries, 8 bytes. */
struct mpc_intsrc {
    uint8_t type; /* 3 (I/O) or 4 (local) */
    uint8_t irqtype;
    uint16_t irqflag;
    uint8_t srcbus;
    uint8_t srcbusirq;
    uint8_t dstapic;
    uint8_t dstirq;
} __attribute__((packed));

#define MP_PROCESSOR       0
#define MP_BUS             1
#define MP_IOAPIC          2
#define MP_INTSRC          3
#define MP_LINTSRC         4
#define MP_SPEC_1_4        4
#define CPU_ENABLED        1
#define CPU_BOOTPROCESSOR  2
#define MPC_APIC_USABLE    1
#define MP_IRQTYPE_INT     0
#define MP_IRQTYPE_NMI     1
#define MP_IRQTYPE_EXTINT  3
#define MP_IRQFLAG_DEFAULT 0    /* conforms to the bus: ISA = edge, high */
#define APIC_VERSION       0x14 /* integrated local APIC, as KVM's */
#define IOAPIC_VERSION     0x11 /* 82093AA, as KVM's */
#define MP_ALL_APICS       0xff
/* CPU signature for the entry: family 6; Linux only prints it. */
#define CPU_SIGNATURE        0x600
#define CPU_FEATURE_FPU_APIC 0x201 /* CPUID.1:EDX FPU | APIC */

size_t mptable_size(unsigned int nr_cpus)
{
    return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
           nr_cpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
           sizeof(struct mpc_ioapic) +
           MPTABLE_IOAPIC_PINS * sizeof(struct mpc_intsrc) +
           2 * sizeof(struct mpc_intsrc);
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)(0 - sum);
}

int mptable_build(uint8_t *buf, size_t len, uint64_t gpa, unsigned int nr_cpus)
{
    if (nr_cpus == 0 || nr_cpus > MPTABLE_MAX_CPUS)
        return -EINVAL;
    size_t need = mptable_size(nr_cpus);
    if (len < need || gpa + need > UINT32_MAX)
        return -ENOSPC;
    memset(buf, 0, need);

    struct mpf_intel mpf = {
        .signature = {'_', 'M', 'P', '_'},
        .physptr = (uint32_t)(gpa + sizeof(struct mpf_intel)),
        .length = 1,
        .specification = MP_SPEC_1_4,
    };
    mpf.checksum = checksum((const uint8_t *)&mpf, sizeof(mpf));
    memcpy(buf, &mpf, sizeof(mpf));

    uint8_t *table = buf + sizeof(mpf);
    size_t off = sizeof(struct mpc_table);
    uint16_t count = 0;
    for (unsigned int i = 0; i < nr_cpus; i++) {
        struct mpc_cpu cpu = {
            .type = MP_PROCESSOR,
            .apicid = (uint8_t)i,
            .apicver = APIC_VERSION,
            .cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0),
            .cpufeature = CPU_SIGNATURE,
            .featureflag = CPU_FEATURE_FPU_APIC,
        };
        memcpy(table + off, &cpu, sizeof(cpu));
        off += sizeof(cpu);
        count++;
    }
    struct mpc_bus bus = {
        .type = MP_BUS, .busid = 0, .bustype = {'I', 'S', 'A', ' ', ' ', ' '}};
    memcpy(table + off, &bus, sizeof(bus));
    off += sizeof(bus);
    count++;
    uint8_t ioapic_id = (uint8_t)nr_cpus;
    struct mpc_ioapic ioapic = {.type = MP_IOAPIC,
                                .apicid = ioapic_id,
                                .apicver = IOAPIC_VERSION,
                                .flags = MPC_APIC_USABLE,
                                .apicaddr = (uint32_t)LAYOUT_IOAPIC_ADDR};
    memcpy(table + off, &ioapic, sizeof(ioapic));
    off += sizeof(ioapic);
    count++;
    /* ISA IRQ n -> IOAPIC pin n, edge/high as the ISA bus conforms. */
    for (unsigned int pin = 0; pin < MPTABLE_IOAPIC_PINS; pin++) {
        struct mpc_intsrc src = {
            .type = MP_INTSRC,
            .irqtype = MP_IRQTYPE_INT,
            .irqflag = MP_IRQFLAG_DEFAULT,
            .srcbus = 0,
            .srcbusirq = (uint8_t)pin,
            .dstapic = ioapic_id,
            .dstirq = (uint8_t)pin,
        };
        memcpy(table + off, &src, sizeof(src));
        off += sizeof(src);
        count++;
    }
    /* LINT0 carries the 8259's ExtINT, LINT1 NMI (virtual wire mode). */
    struct mpc_intsrc lint[2] = {
        {.type = MP_LINTSRC,
         .irqtype = MP_IRQTYPE_EXTINT,
         .irqflag = MP_IRQFLAG_DEFAULT,
         .dstapic = MP_ALL_APICS,
         .dstirq = 0},
        {.type = MP_LINTSRC,
         .irqtype = MP_IRQTYPE_NMI,
         .irqflag = MP_IRQFLAG_DEFAULT,
         .dstapic = MP_ALL_APICS,
         .dstirq = 1},
    };
    memcpy(table + off, lint, sizeof(lint));
    off += sizeof(lint);
    count += 2;

    struct mpc_table hdr = {
        .signature = {'P', 'C', 'M', 'P'},
        .length = (uint16_t)off,
        .spec = MP_SPEC_1_4,
        .oem = {'R', 'U', 'N', 'V', 'M', ' ', ' ', ' '},
        .productid = {'M', 'I', 'C', 'R', 'O', 'V', 'M', ' ', ' ', ' ', ' ',
                      ' '},
        .oemcount = count,
        .lapic = (uint32_t)LAYOUT_LAPIC_ADDR,
    };
    memcpy(table, &hdr, sizeof(hdr));
    table[offsetof(struct mpc_table, checksum)] = checksum(table, off);
    return 0;
}
