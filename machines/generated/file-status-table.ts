// Generated from machines/file-status.machine.ts by scripts/file-status-table.ts (npm run build).
// Do not edit: change the statechart; test/unit/file-status-table.test.ts checks this file.
import type { FileStatusTable } from '../file-status.facts.ts'

/** The file-status statechart's 15 paths from the first fact to a status: event type → next node. */
export const FILE_STATUS_TABLE: FileStatusTable = {
  "rules.ignored": "ignored",
  "rules.tracked": {
    "base.absent": {
      "target.absent": "unversioned",
      "target.added": {
        "local.absent": "missing",
        "local.asTarget": "current",
        "local.other": "conflict"
      }
    },
    "base.present": {
      "target.absent": {
        "local.absent": "removed",
        "local.asBase": "removed",
        "local.other": "conflict"
      },
      "target.changed": {
        "local.absent": "missing",
        "local.asBase": "outdated",
        "local.asTarget": "current",
        "local.other": "conflict"
      },
      "target.same": {
        "local.absent": "missing",
        "local.asTarget": "current",
        "local.other": "modified"
      }
    }
  }
}
