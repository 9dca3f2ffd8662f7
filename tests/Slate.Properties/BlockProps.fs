module Slate.Properties.BlockProps

open Expecto

let allTests = testList "Block" []
