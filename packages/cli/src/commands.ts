// The command map (oclif's explicit discovery: no manifest, no globbing at start-up).
import Copy from './commands/copy'
import Engines from './commands/engines'
import Server from './commands/server'

export const COMMANDS = { copy: Copy, engines: Engines, server: Server }
