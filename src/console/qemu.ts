/**
 * Serial method `qemu VMDIR`: the serial port of a virtual-lab VM, which QEMU appends to the file its
 * definition (VMDIR/vm.json) names, across restarts of the VM. Read as a file console.
 *
 * Tested with QEMU 7.2 in the virtual lab e2e test.
 */
import { readVmSpec } from '../power/qemu.js';
import { FileConsole } from './file.js';

export class QemuConsole extends FileConsole {
  override readonly method = 'qemu';
  constructor(readonly vmDir: string) {
    super(readVmSpec(vmDir).serialLog);
  }
  override get describe(): string {
    return `qemu serial ${this.path}`;
  }
}
