module Slate.Cli.Inspect

let placeholder = ()
