module Slate.Properties.BloomProps

open Expecto

let allTests = testList "Bloom" []
