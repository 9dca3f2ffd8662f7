module Slate.Emulators.Main

[<EntryPoint>]
let main _ = 0
