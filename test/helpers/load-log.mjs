// `node --import ./test/helpers/load-log.mjs …` appends the URL of every ES module the process
// loads to the file named by UPSWARM_LOAD_LOG: tests use it to check what a command loads.
import { register } from 'node:module'

register('./load-log-hooks.mjs', import.meta.url)
