# A 512-byte guest for the testbed: SeaBIOS boots it from the instance's disk. About once a second it
# counts, prints "disk-tick NNNN" (hex) on COM1 and writes the same text to sector 8+N of its disk,
# so the serial logs show which node runs it, and the shared disk shows which QEMU wrote each tick.
# It also keeps its count in sector 7 ("ti" and the count) and starts from there when it boots, so
# after a failover the count goes on from the last tick that reached the disk.
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
        hlt
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

drive:   .byte 0
counter: .word 0
digits:  .ascii "0123456789abcdef"
msg:     .ascii "disk-tick 0000\n\0"
dap:     .byte 16, 0
         .word 1, 0x7e00, 0
lba:     .word 0, 0, 0, 0
         .org 510
         .byte 0x55, 0xaa
