<#
.SYNOPSIS
    The whole study in one go: fetch the model, run the baseline sweep (P1) and the ablation
    sweep (P2), write a report for each with the original study's CSV files, and open the
    dashboard. PowerShell counterpart of run_pipeline.sh (Windows PowerShell 5.1 or PowerShell 7).

.EXAMPLE
    pwsh examples/run_pipeline.ps1 -OutDir results/pipeline
.EXAMPLE
    pwsh examples/run_pipeline.ps1 -P1Config seed_p1 -P2Config seed_p2 -CpuOnly -Serve
.EXAMPLE
    pwsh examples/run_pipeline.ps1 -FetchArgs 'tinyllama-1.1b-chat:Q4_0' -SkipAblation

.NOTES
    Results: OutDir/p1_baseline, OutDir/p2_ablation (sweep results), OutDir/report_p1,
    OutDir/report_p2 (reports: report.html is the dashboard, self-contained; tables\ holds
    latency_results.csv, power_logs.csv and raw_*_power_*.csv in the study's layout). Any failing
    step stops the script. Rerunning with the same OutDir resumes an interrupted sweep (finished
    runs are kept).
#>
[CmdletBinding()]
param(
    # Where results and reports go.
    [string]$OutDir = 'results/pipeline',
    # The energybench executable (e.g. the full path of energybench.exe in a virtual environment).
    [string]$Energybench = 'energybench',
    # What to fetch first; for the real model: @('tinyllama-1.1b-chat:Q4_0').
    [string[]]$FetchArgs = @('--synthetic', 'tinyllama-1.1b', '--quant', 'Q4_0'),
    # Baseline config (a file, or a built-in name such as seed_p1: the study's own design).
    [string]$P1Config = (Join-Path $PSScriptRoot 'p1_baseline.yaml'),
    # Ablation config (a file, or a built-in name such as seed_p2: the study's own design).
    [string]$P2Config = (Join-Path $PSScriptRoot 'p2_ablation.yaml'),
    # Run the baseline only.
    [switch]$SkipAblation,
    # Run only the points that need no GPU (sweep --cpu-only).
    [switch]$CpuOnly,
    # Serve the last report at the end (report --serve; Ctrl-C stops).
    [switch]$Serve,
    # Port for -Serve.
    [int]$Port = 8765
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
# PowerShell 7.3+: a native command that exits non-zero raises an error too.
$PSNativeCommandUseErrorActionPreference = $true

function Invoke-Energybench {
    param([Parameter(Mandatory = $true)][string[]]$Arguments)
    Write-Host "+ $Energybench $($Arguments -join ' ')"
    & $Energybench @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "energybench $($Arguments[0]) failed with exit code $LASTEXITCODE"
    }
}

# Start a sweep, or resume it if the directory already holds one (its stored config remembers
# --cpu-only).
function Invoke-Sweep {
    param([Parameter(Mandatory = $true)][string]$Config, [Parameter(Mandatory = $true)][string]$Dir)
    Invoke-Energybench @('config', 'validate', $Config)
    if (Test-Path -LiteralPath (Join-Path $Dir 'metadata.json')) {
        Invoke-Energybench @('sweep', '--resume', $Dir)
    } elseif ($CpuOnly) {
        Invoke-Energybench @('sweep', '--config', $Config, '--out', $Dir, '--cpu-only')
    } else {
        Invoke-Energybench @('sweep', '--config', $Config, '--out', $Dir)
    }
}

New-Item -ItemType Directory -Force -Path $OutDir | Out-Null
$p1Out = Join-Path $OutDir 'p1_baseline'
$p2Out = Join-Path $OutDir 'p2_ablation'

Write-Host '== 1/5 fetch the model'
Invoke-Energybench (@('fetch') + $FetchArgs)

Write-Host '== 2/5 baseline sweep (P1)'
Invoke-Sweep -Config $P1Config -Dir $p1Out

if (-not $SkipAblation) {
    Write-Host '== 3/5 ablation sweep (P2)'
    Invoke-Sweep -Config $P2Config -Dir $p2Out
} else {
    Write-Host '== 3/5 ablation sweep skipped (-SkipAblation)'
}

Write-Host "== 4/5 reports and the study's CSV files"
Invoke-Energybench @('report', $p1Out, '-o', (Join-Path $OutDir 'report_p1'), '--export', 'csv')
$last = $p1Out
if (-not $SkipAblation) {
    Invoke-Energybench @('report', $p2Out, '-o', (Join-Path $OutDir 'report_p2'), '--export', 'csv')
    $last = $p2Out
}

Write-Host '== 5/5 dashboard'
if ($Serve) {
    Invoke-Energybench @('report', $last, '--serve', '--port', "$Port")
} else {
    Write-Host "open $(Join-Path $OutDir 'report_p1' | Join-Path -ChildPath 'report.html') (and report_p2), or serve it live: $Energybench report $last --serve"
}

Write-Host "done: results and reports in $OutDir"
