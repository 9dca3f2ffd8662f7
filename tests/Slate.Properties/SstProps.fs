module Slate.Properties.SstProps

open Expecto

let allTests = testList "Sst" []
