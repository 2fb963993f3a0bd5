@echo off
rem The sqlite-backup WebJob on Windows. Kudu prefers run.cmd to run.js, which it would start with
rem the node.exe on its PATH: a 32-bit Node on default workers, for which the job has no SQLite
rem binary. This starts run.js, the launcher, with any Node it finds (the PATH's first: Kudu can
rem run it), and the launcher picks the Node for the backup. The job runs in place (settings.job).
setlocal
set "LAUNCHER_NODE="
if defined SQLITE_BACKUP_NODE if exist "%SQLITE_BACKUP_NODE%" set "LAUNCHER_NODE=%SQLITE_BACKUP_NODE%"
if not defined LAUNCHER_NODE for %%N in (node.exe) do set "LAUNCHER_NODE=%%~$PATH:N"
if not defined LAUNCHER_NODE for /d %%D in ("%ProgramW6432%\nodejs\*" "%ProgramFiles(x86)%\nodejs\*") do if exist "%%~D\node.exe" set "LAUNCHER_NODE=%%~D\node.exe"
if defined LAUNCHER_NODE goto launch
echo The sqlite-backup job found no node.exe on the PATH, under "%ProgramW6432%\nodejs" or under "%ProgramFiles(x86)%\nodejs". Add the app setting SQLITE_BACKUP_NODE with the full path of a node.exe: a 64-bit Node 22 or later, or any Node 22.13 or later.
exit /b 1
:launch
"%LAUNCHER_NODE%" "%~dp0run.js" %*
exit /b %ERRORLEVEL%
