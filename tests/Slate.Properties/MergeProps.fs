module Slate.Properties.MergeProps

open Expecto

let allTests = testList "Merge" []
