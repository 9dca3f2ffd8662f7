module Slate.Properties.InteropTests

open Expecto

let allTests = testList "Interop" []
