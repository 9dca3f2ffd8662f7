module Slate.Properties.SizeTieredProps

open Expecto

let allTests = testList "SizeTiered" []
