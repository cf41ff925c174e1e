// The builder's webpack loads .svg files as strings (asset/source), as JupyterLab's own icons are.
declare module '*.svg' {
  const value: string;
  export default value;
}
