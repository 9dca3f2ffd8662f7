module Slate.Properties.Emulators

let placeholder = ()
