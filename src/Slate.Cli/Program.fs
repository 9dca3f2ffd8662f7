module Slate.Cli.Program

[<EntryPoint>]
let main _ = 0
