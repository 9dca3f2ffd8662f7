module Slate.Properties.KeyRangeProps

open Expecto

let allTests = testList "KeyRange" []
