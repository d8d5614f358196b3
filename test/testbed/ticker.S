# A 512-byte guest for the testbed: SeaBIOS boots it from the instance's disk. About once a second it
# counts, prints "disk-tick NNNN" (hex) on COM1 and writes the same text to sector 8+N of its disk,
# so the serial logs show which node runs it, and the shared disk shows which QEMU wrote each tick.
# It also keeps its count in sector 7 ("ti" and the count) and starts from there when it boots, so
# after a failover the count goes on from the last tick that reached the disk.
# Assembled with --defsym BUSY=1 it does not halt between ticks but writes to each page of 512 KiB of
# its memory (0x10000-0x8ffff, below SeaBIOS's EBDA) over and over: a guest that dirties memory far
# faster than a throttled link copies it, for the convergence policy.
        .code16
        .text
        .globl _start
_start:
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw $0x7c00, %sp
        sti
        movb %dl, drive
        movw $7, lba
        movw $dap, %si
        movw $0x4200, %ax
        int $0x13
        jc next
        cmpw $0x7469, 0x7e00
        jne next
        movw 0x7e02, %ax
        movw %ax, counter
next:
        movw 0x46c, %bx
wait:
.ifdef BUSY
        call sweep
.else
        hlt
.endif
        movw 0x46c, %ax
        subw %bx, %ax
        cmpw $18, %ax
        jb wait
        incw counter
        movw counter, %ax
        movw $msg+13, %di
        movw $4, %cx
hex:
        movw %ax, %si
        andw $0xf, %si
        movb digits(%si), %dl
        movb %dl, (%di)
        decw %di
        shrw $4, %ax
        loop hex
        movw $msg, %si
        movw $0x3f8, %dx
print:
        lodsb
        testb %al, %al
        jz printed
        outb %al, %dx
        jmp print
printed:
        movw $msg, %si
        movw $0x7e00, %di
        movw $16, %cx
        rep movsb
        movw counter, %ax
        addw $8, %ax
        movw %ax, lba
        movw $dap, %si
        movb drive, %dl
        movw $0x4300, %ax
        int $0x13
        movw $0x7469, 0x7e00
        movw counter, %ax
        movw %ax, 0x7e02
        movw $7, lba
        movw $dap, %si
        movb drive, %dl
        movw $0x4300, %ax
        int $0x13
        jmp next

.ifdef BUSY
# One word in each 4 KiB page dirties the whole page (QEMU tracks pages): 128 stores a sweep, so the
# guest dirties all 512 KiB many times over during any pass, however slow the emulation.
# QEMU 7.2's TCG marks a page dirty for migration when a store misses its TLB; a page whose TLB entry
# survives a dirty-bitmap sync is not marked again. Toggling CR0.WP flushes the TLB (a no-op in real
# mode otherwise), so every sweep's stores are seen, as KVM's hardware dirty logging would see them.
sweep:
        pushw %es
        movl %cr0, %eax
        xorl $0x10000, %eax
        movl %eax, %cr0
        xorl $0x10000, %eax
        movl %eax, %cr0
        incw sweeps
        movw sweeps, %ax
        movw $0x1000, %dx
sweeppage:
        movw %dx, %es
        movw %ax, %es:0
        addw $0x100, %dx
        cmpw $0x9000, %dx
        jb sweeppage
        popw %es
        ret
sweeps:  .word 0x5a5a
.endif

drive:   .byte 0
counter: .word 0
digits:  .ascii "0123456789abcdef"
msg:     .ascii "disk-tick 0000\n\0"
dap:     .byte 16, 0
         .word 1, 0x7e00, 0
lba:     .word 0, 0, 0, 0
         .org 510
         .byte 0x55, 0xaa
